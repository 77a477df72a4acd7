// Test double of libmindspore.so for the Ascend 310 app (see tests/ascend310_stub/README.md).
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "include/api/model.h"
#include "include/api/serialization.h"

namespace mindspore {
namespace {
std::vector<int64_t> EnvShape(const char *name, const std::vector<int64_t> &fallback) {
  const char *text = std::getenv(name);
  if (text == nullptr || *text == '\0') {
    return fallback;
  }
  std::vector<int64_t> shape;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    shape.push_back(std::atoll(item.c_str()));
  }
  return shape;
}

size_t Elements(const std::vector<int64_t> &shape) {
  size_t count = 1;
  for (int64_t d : shape) {
    count *= static_cast<size_t>(d);
  }
  return count;
}
}  // namespace

MSTensor::MSTensor() : type_(DataType::kTypeUnknown), data_(std::make_shared<std::vector<unsigned char>>()) {}

MSTensor::MSTensor(const std::string &name, enum DataType type, const std::vector<int64_t> &shape, const void *data,
                   size_t data_len)
    : name_(name), type_(type), shape_(shape), data_(std::make_shared<std::vector<unsigned char>>(data_len)) {
  if (data != nullptr && data_len > 0) {
    std::memcpy(data_->data(), data, data_len);
  }
}

std::string MSTensor::Name() const { return name_; }
enum DataType MSTensor::DataType() const { return type_; }
const std::vector<int64_t> &MSTensor::Shape() const { return shape_; }
int64_t MSTensor::ElementNum() const { return static_cast<int64_t>(Elements(shape_)); }
std::shared_ptr<const void> MSTensor::Data() const {
  return std::shared_ptr<const void>(data_, data_->empty() ? nullptr : data_->data());
}
void *MSTensor::MutableData() { return data_->empty() ? nullptr : data_->data(); }
size_t MSTensor::DataSize() const { return data_->size(); }

Status Serialization::Load(const std::string &file, ModelType model_type, Graph *graph) {
  std::ifstream in(file, std::ios::binary | std::ios::ate);
  if (model_type != kMindIR || !in.is_open() || in.tellg() <= 0) {
    return Status(kMEInvalidInput, "stub: cannot load " + file);
  }
  *graph = Graph(file);
  return Status(kSuccess);
}

Status Model::Build(GraphCell graph, const std::shared_ptr<Context> &model_context) {
  if (graph.GetGraph() == nullptr || model_context == nullptr || model_context->MutableDeviceInfo().empty()) {
    return Status(kMEInvalidInput, "stub: nothing to build");
  }
  input_shape_ = EnvShape("STUB_INPUT_SHAPE", {1, 3, 32, 32});
  built_ = true;
  return Status(kSuccess);
}

std::vector<MSTensor> Model::GetInputs() {
  if (!built_) {
    return {};
  }
  return {MSTensor("image", DataType::kNumberTypeFloat32, input_shape_, nullptr, Elements(input_shape_) * 4)};
}

Status Model::Predict(const std::vector<MSTensor> &inputs, std::vector<MSTensor> *outputs) {
  if (!built_ || inputs.size() != 1 || inputs[0].DataSize() != Elements(input_shape_) * 4) {
    return Status(kMEInvalidInput, "stub: bad input");
  }
  const char *k_text = std::getenv("STUB_OUTPUT_K");
  int64_t k = k_text ? std::atoll(k_text) : 4;
  float first = static_cast<const float *>(inputs[0].Data().get())[0];
  std::vector<float> dets(static_cast<size_t>(k) * 6);
  for (int64_t r = 0; r < k; ++r) {
    float *row = &dets[static_cast<size_t>(r) * 6];
    row[0] = first + r;
    row[1] = first + r;
    row[2] = first + r + 4;
    row[3] = first + r + 4;
    row[4] = 1.0f / (r + 2);
    row[5] = static_cast<float>(r % 5);
  }
  outputs->clear();
  outputs->emplace_back("detections", DataType::kNumberTypeFloat32, std::vector<int64_t>{1, k, 6}, dets.data(),
                        dets.size() * sizeof(float));
  return Status(kSuccess);
}
}  // namespace mindspore
