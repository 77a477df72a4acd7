// Test double of libmindspore.so for the Ascend 310 app (see tests/ascend310_stub/README.md).
// Defines exactly the out-of-line functions that the headers of this folder declare: the ones the
// real library exports for the app (the std::vector<char> side of the dual-ABI wrappers).
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "include/api/context.h"
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

struct Status::Data {
  enum StatusCode code = kSuccess;
  std::string message;
};

Status::Status() : data_(std::make_shared<Data>()) {}
Status::Status(enum StatusCode status_code, const std::vector<char> &status_msg) : data_(std::make_shared<Data>()) {
  data_->code = status_code;
  data_->message = CharToString(status_msg);
}
enum StatusCode Status::StatusCode() const { return data_->code; }
std::vector<char> Status::ToCString() const { return StringToChar(data_->message); }
bool Status::operator==(const Status &other) const { return data_->code == other.data_->code; }
bool Status::operator==(enum StatusCode other_code) const { return data_->code == other_code; }
bool Status::operator!=(const Status &other) const { return !(*this == other); }
bool Status::operator!=(enum StatusCode other_code) const { return !(*this == other_code); }
bool Status::IsOk() const { return data_->code == kSuccess; }
bool Status::IsError() const { return !IsOk(); }

class MSTensor::Impl {
 public:
  std::string name;
  enum DataType type = DataType::kTypeUnknown;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;
};

MSTensor::MSTensor() : impl_(std::make_shared<Impl>()) {}
MSTensor::MSTensor(const std::shared_ptr<Impl> &impl) : impl_(impl) {}
MSTensor::MSTensor(const std::vector<char> &name, enum DataType type, const std::vector<int64_t> &shape,
                   const void *data, size_t data_len)
    : impl_(std::make_shared<Impl>()) {
  impl_->name = CharToString(name);
  impl_->type = type;
  impl_->shape = shape;
  impl_->bytes.resize(data_len);
  if (data != nullptr && data_len > 0) {
    std::memcpy(impl_->bytes.data(), data, data_len);
  }
}
MSTensor::~MSTensor() = default;

std::vector<char> MSTensor::CharName() const { return StringToChar(impl_->name); }
enum DataType MSTensor::DataType() const { return impl_->type; }
const std::vector<int64_t> &MSTensor::Shape() const { return impl_->shape; }
int64_t MSTensor::ElementNum() const { return static_cast<int64_t>(Elements(impl_->shape)); }
std::shared_ptr<const void> MSTensor::Data() const {
  return std::shared_ptr<const void>(impl_, impl_->bytes.empty() ? nullptr : impl_->bytes.data());
}
void *MSTensor::MutableData() { return impl_->bytes.empty() ? nullptr : impl_->bytes.data(); }
size_t MSTensor::DataSize() const { return impl_->bytes.size(); }

// The stub's "loaded model": the file it came from.
class Graph::GraphData {
 public:
  std::string file;
  enum ModelType type = kUnknownType;
};

Graph::Graph() = default;
Graph::Graph(const std::shared_ptr<GraphData> &graph_data) : graph_data_(graph_data) {}
Graph::Graph(std::shared_ptr<GraphData> &&graph_data) : graph_data_(std::move(graph_data)) {}
Graph::Graph(std::nullptr_t) {}
Graph::~Graph() = default;
enum ModelType Graph::ModelType() const { return graph_data_ ? graph_data_->type : kUnknownType; }
bool Graph::operator==(std::nullptr_t) const { return graph_data_ == nullptr; }
bool Graph::operator!=(std::nullptr_t) const { return graph_data_ != nullptr; }

GraphCell::GraphCell(const Graph &graph) : graph_(std::make_shared<Graph>(graph)) {}
GraphCell::GraphCell(Graph &&graph) : graph_(std::make_shared<Graph>(std::move(graph))) {}
GraphCell::GraphCell(const std::shared_ptr<Graph> &graph) : graph_(graph) {}
Status GraphCell::Run(const std::vector<MSTensor> &, std::vector<MSTensor> *) {
  return Status(kMEFailed, "stub: GraphCell::Run is not modelled; use Model::Predict");
}

struct Context::Data {
  std::vector<std::shared_ptr<DeviceInfoContext>> device_info;
};

Context::Context() : data_(std::make_shared<Data>()) {}
std::vector<std::shared_ptr<DeviceInfoContext>> &Context::MutableDeviceInfo() { return data_->device_info; }

struct DeviceInfoContext::Data {
  uint32_t device_id = 0;
  std::string precision_mode;
  std::string op_select_impl_mode;
};

DeviceInfoContext::DeviceInfoContext() : data_(std::make_shared<Data>()) {}

void AscendDeviceInfo::SetDeviceID(uint32_t device_id) { data_->device_id = device_id; }
uint32_t AscendDeviceInfo::GetDeviceID() const { return data_->device_id; }
void AscendDeviceInfo::SetPrecisionMode(const std::vector<char> &precision_mode) {
  data_->precision_mode = CharToString(precision_mode);
}
std::vector<char> AscendDeviceInfo::GetPrecisionModeChar() const { return StringToChar(data_->precision_mode); }
void AscendDeviceInfo::SetOpSelectImplMode(const std::vector<char> &op_select_impl_mode) {
  data_->op_select_impl_mode = CharToString(op_select_impl_mode);
}
std::vector<char> AscendDeviceInfo::GetOpSelectImplModeChar() const {
  return StringToChar(data_->op_select_impl_mode);
}

// A built model: the input shape it expects (STUB_INPUT_SHAPE).
class ModelImpl {
 public:
  static bool Loaded(const GraphCell &cell) {
    return cell.GetGraph() != nullptr && *cell.GetGraph() != nullptr && cell.GetGraph()->graph_data_->type == kMindIR;
  }
  std::vector<int64_t> input_shape;
};

Model::Model() = default;
Model::~Model() = default;

Status Model::Build(GraphCell graph, const std::shared_ptr<Context> &model_context,
                    const std::shared_ptr<TrainCfg> &train_cfg) {
  if (!ModelImpl::Loaded(graph) || model_context == nullptr || train_cfg != nullptr) {
    return Status(kMEInvalidInput, "stub: build needs a loaded MINDIR graph, a context and no training config");
  }
  const auto &devices = model_context->MutableDeviceInfo();
  if (devices.size() != 1 || devices[0] == nullptr || devices[0]->GetDeviceType() != kAscend) {
    return Status(kMCInvalidArgs, "stub: the context must hold one Ascend device");
  }
  impl_ = std::make_shared<ModelImpl>();
  impl_->input_shape = EnvShape("STUB_INPUT_SHAPE", {1, 3, 32, 32});
  return Status(kSuccess);
}

std::vector<MSTensor> Model::GetInputs() {
  if (impl_ == nullptr) {
    return {};
  }
  return {MSTensor("image", DataType::kNumberTypeFloat32, impl_->input_shape, nullptr,
                   Elements(impl_->input_shape) * sizeof(float))};
}

Status Model::Predict(const std::vector<MSTensor> &inputs, std::vector<MSTensor> *outputs, const MSKernelCallBack &,
                      const MSKernelCallBack &) {
  if (impl_ == nullptr || outputs == nullptr || inputs.size() != 1 ||
      inputs[0].DataSize() != Elements(impl_->input_shape) * sizeof(float)) {
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

Status Serialization::Load(const std::vector<char> &file, ModelType model_type, Graph *graph) {
  return Load(file, model_type, graph, Key(), StringToChar(kDecModeAesGcm));
}

Status Serialization::Load(const std::vector<char> &file, ModelType model_type, Graph *graph, const Key &dec_key,
                           const std::vector<char> &) {
  std::string path = CharToString(file);
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (graph == nullptr || model_type != kMindIR || dec_key.len != 0 || !in.is_open() || in.tellg() <= 0) {
    return Status(kMEInvalidInput, "stub: cannot load " + path + " as a plain MINDIR");
  }
  auto data = std::make_shared<Graph::GraphData>();
  data->file = path;
  data->type = model_type;
  *graph = Graph(data);
  return Status(kSuccess);
}
}  // namespace mindspore
