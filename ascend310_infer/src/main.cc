/**
 * CenterNet inference on the Ascend 310 with the MindSpore C++ API.
 *
 *   ./out/main --mindir_path=centernet.mindir --input_path=./preprocess_Result/images \
 *              --output_path=./result_Files --device_id=0
 *
 * Loads the MINDIR written by export.py, builds it for the Ascend 310 and runs it on every
 * <input_path>/<image_id>.bin written by preprocess.py (float32, the model's (1, 3, H, W)
 * input). Output i of each input goes to <output_path>/<image_id>_<i>.bin: here one output,
 * the (1, K, 6) float32 detections read by postprocess.py. The mean inference time is
 * written to <time_path>/test_perform_static.txt. Exits non-zero on any failure.
 */
#include <sys/time.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/serialization.h"
#include "include/api/types.h"
#include "inc/utils.h"

using mindspore::Ascend310DeviceInfo;
using mindspore::Context;
using mindspore::Graph;
using mindspore::GraphCell;
using mindspore::kSuccess;
using mindspore::Model;
using mindspore::ModelType;
using mindspore::MSTensor;
using mindspore::Serialization;
using mindspore::Status;

namespace {
double NowMs() {
  struct timeval now;
  gettimeofday(&now, nullptr);
  return now.tv_sec * 1000.0 + now.tv_usec / 1000.0;
}

std::string ShapeText(const std::vector<int64_t> &shape) {
  std::ostringstream text;
  text << "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    text << (i ? ", " : "") << shape[i];
  }
  text << ")";
  return text.str();
}

int Fail(const std::string &message) {
  std::cerr << "ERROR: " << message << std::endl;
  return 1;
}
}  // namespace

int main(int argc, char **argv) {
  InferOptions options;
  std::string error;
  if (!ParseArgs(argc, argv, &options, &error)) {
    std::cerr << "ERROR: " << error << "\n" << Usage(argv[0]) << std::endl;
    return 2;
  }
  std::ifstream model_file(options.mindir_path);
  if (!model_file.good()) {
    return Fail("MINDIR not found: " + options.mindir_path);
  }
  model_file.close();

  auto context = std::make_shared<Context>();
  auto ascend310 = std::make_shared<Ascend310DeviceInfo>();
  ascend310->SetDeviceID(options.device_id);
  ascend310->SetPrecisionMode(options.precision_mode);
  ascend310->SetOpSelectImplMode(options.op_select_impl_mode);
  context->MutableDeviceInfo().push_back(ascend310);

  Graph graph;
  Status ret = Serialization::Load(options.mindir_path, ModelType::kMindIR, &graph);
  if (ret != kSuccess) {
    return Fail("cannot load " + options.mindir_path + " as MINDIR");
  }
  Model model;
  ret = model.Build(GraphCell(graph), context);
  if (ret != kSuccess) {
    return Fail("building the model for Ascend 310 device " + std::to_string(options.device_id) + " failed");
  }
  std::vector<MSTensor> model_inputs = model.GetInputs();
  if (model_inputs.size() != 1) {
    return Fail("the model has " + std::to_string(model_inputs.size()) + " inputs; CenterNet's export has one");
  }
  const MSTensor &model_input = model_inputs[0];

  std::vector<std::string> files;
  if (!ListFiles(options.input_path, ".bin", &files, &error)) {
    return Fail(error);
  }
  if (files.empty()) {
    return Fail("no .bin input files in " + options.input_path);
  }
  if (!MakeDirs(options.output_path)) {
    return Fail("cannot create the output folder " + options.output_path);
  }
  std::cout << "model input " << model_input.Name() << " " << ShapeText(model_input.Shape()) << ", "
            << model_input.DataSize() << " bytes; " << files.size() << " input files" << std::endl;

  double total_ms = 0.0;
  for (size_t i = 0; i < files.size(); ++i) {
    MSTensor data = ReadFileToTensor(files[i]);
    if (data.DataSize() != model_input.DataSize()) {
      return Fail(files[i] + " holds " + std::to_string(data.DataSize()) + " bytes but the model input " +
                  ShapeText(model_input.Shape()) + " needs " + std::to_string(model_input.DataSize()));
    }
    std::vector<MSTensor> inputs;
    inputs.emplace_back(model_input.Name(), model_input.DataType(), model_input.Shape(), data.Data().get(),
                        data.DataSize());
    std::vector<MSTensor> outputs;
    double start = NowMs();
    ret = model.Predict(inputs, &outputs);
    total_ms += NowMs() - start;
    if (ret != kSuccess) {
      return Fail("inference failed on " + files[i]);
    }
    if (!WriteResult(options.output_path, FileStem(files[i]), outputs, &error)) {
      return Fail(error);
    }
  }

  double mean_ms = total_ms / files.size();
  std::cout << "inferred " << files.size() << " inputs, mean " << mean_ms << " ms per input -> "
            << options.output_path << std::endl;
  if (MakeDirs(options.time_path)) {
    std::ofstream stats(options.time_path + "/test_perform_static.txt");
    stats << "NN inference cost average time: " << mean_ms << " ms of infer_count " << files.size() << std::endl;
  }
  return 0;
}
