// Facts of the MindSpore 2.7.0 C++ API (mindspore/include/api of the mindspore==2.7.0 wheel) about every
// type and method the Ascend 310 app uses, as compile-time checks. tests/test_ascend310_stub.py compiles
// this file against the test double; `check_real_headers.sh` compiles it against the real headers.
// Whatever the symbols cannot show (aliases, abstract/polymorphic classes, enum values, constructors that
// must not exist, defaulted parameters) is checked here; app_symbols.txt covers the exported signatures.
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "include/api/context.h"
#include "include/api/model.h"
#include "include/api/serialization.h"
#include "include/api/types.h"

namespace ms = mindspore;

// Device set-up: the 310 device is the Ascend device class, a concrete subclass of an abstract base.
static_assert(std::is_same<ms::Ascend310DeviceInfo, ms::AscendDeviceInfo>::value, "Ascend310DeviceInfo is an alias");
static_assert(std::is_abstract<ms::DeviceInfoContext>::value, "DeviceInfoContext is abstract");
static_assert(std::is_base_of<ms::DeviceInfoContext, ms::AscendDeviceInfo>::value, "AscendDeviceInfo derives");
static_assert(!std::is_abstract<ms::AscendDeviceInfo>::value, "AscendDeviceInfo is concrete");
static_assert(std::is_polymorphic<ms::DeviceInfoContext>::value, "DeviceInfoContext has virtuals");
static_assert(ms::kAscend == 3 && ms::kAscend310 == 5, "DeviceType values");
static_assert(std::is_same<void (ms::AscendDeviceInfo::*)(uint32_t), decltype(&ms::AscendDeviceInfo::SetDeviceID)>::value,
              "SetDeviceID(uint32_t)");
// The public string setters are the inline wrappers (their char overloads are private).
static_assert(std::is_same<void, decltype(static_cast<void (ms::AscendDeviceInfo::*)(const std::string &)>(
                                              &ms::AscendDeviceInfo::SetPrecisionMode),
                                          void())>::value,
              "SetPrecisionMode(const std::string &)");
static_assert(std::is_same<void, decltype(static_cast<void (ms::AscendDeviceInfo::*)(const std::string &)>(
                                              &ms::AscendDeviceInfo::SetOpSelectImplMode),
                                          void())>::value,
              "SetOpSelectImplMode(const std::string &)");
static_assert(std::is_same<std::vector<std::shared_ptr<ms::DeviceInfoContext>> &,
                           decltype(std::declval<ms::Context &>().MutableDeviceInfo())>::value,
              "MutableDeviceInfo returns a mutable vector of shared_ptr<DeviceInfoContext>");

// Status codes: component in the top bits.
static_assert(ms::kSuccess == 0u, "kSuccess");
static_assert(ms::kMEFailed == 0x20000001u && ms::kMEInvalidInput == 0x20000002u, "ME codes");
static_assert(ms::kMCFailed == 0x30000001u && ms::kMCInvalidInput == 0x30000003u, "MC codes");
static_assert(std::is_same<std::underlying_type<ms::StatusCode>::type, uint32_t>::value, "StatusCode is uint32_t");
static_assert(std::is_same<bool, decltype(std::declval<const ms::Status &>() != ms::kSuccess)>::value,
              "Status != StatusCode");
static_assert(std::is_same<std::string, decltype(std::declval<const ms::Status &>().ToString())>::value,
              "Status::ToString returns a string");

// Model types and element types.
static_assert(ms::kMindIR == 0 && ms::kAIR == 1 && ms::kOM == 2 && ms::kONNX == 3 && ms::kMindIR_Lite == 4,
              "ModelType values");
static_assert(ms::kUnknownType == 0xFFFFFFFFu, "kUnknownType");
static_assert(static_cast<int>(ms::DataType::kNumberTypeUInt8) == 37, "kNumberTypeUInt8");
static_assert(static_cast<int>(ms::DataType::kNumberTypeFloat32) == 43, "kNumberTypeFloat32");

// Loading: no Graph from a path; Serialization::Load(file, type, graph) with a defaulted key and mode.
static_assert(!std::is_constructible<ms::Graph, std::string>::value, "no Graph(std::string)");
static_assert(!std::is_constructible<ms::Graph, const char *>::value, "no Graph(const char *)");
static_assert(std::is_default_constructible<ms::Graph>::value && std::is_copy_constructible<ms::Graph>::value,
              "Graph is default-constructible and copyable");
static_assert(std::is_same<ms::Status, decltype(ms::Serialization::Load(std::declval<const std::string &>(),
                                                                         ms::kMindIR, std::declval<ms::Graph *>()))>::value,
              "Load(file, type, graph) with defaulted key and mode");
static_assert(std::is_same<ms::Status (*)(const std::string &, ms::ModelType, ms::Graph *, const ms::Key &,
                                          const std::string &),
                           decltype(static_cast<ms::Status (*)(const std::string &, ms::ModelType, ms::Graph *,
                                                               const ms::Key &, const std::string &)>(
                               &ms::Serialization::Load))>::value,
              "Load(const std::string &, ModelType, Graph *, const Key &, const std::string &)");
static_assert(sizeof(ms::kDecModeAesGcm) == sizeof("AES-GCM"), "kDecModeAesGcm");

// Building and running: GraphCell is a polymorphic final Cell; Model::Build and Predict have defaulted tails.
static_assert(std::is_polymorphic<ms::GraphCell>::value, "GraphCell is polymorphic");
static_assert(std::is_final<ms::GraphCell>::value, "GraphCell is final");
static_assert(std::is_base_of<ms::CellBase, ms::GraphCell>::value, "GraphCell is a CellBase");
static_assert(!std::is_convertible<ms::Graph, ms::GraphCell>::value, "GraphCell(const Graph &) is explicit");
static_assert(std::is_same<const std::shared_ptr<ms::Graph> &, decltype(std::declval<ms::GraphCell &>().GetGraph())>::value,
              "GraphCell::GetGraph returns the shared graph");
static_assert(std::is_copy_constructible<ms::Model>::value && std::is_copy_assignable<ms::Model>::value,
              "Model is copyable (copies share the built model)");
static_assert(std::is_same<ms::Status, decltype(std::declval<ms::Model &>().Build(
                                           std::declval<ms::GraphCell>(), std::declval<std::shared_ptr<ms::Context>>()))>::value,
              "Build(graph, context) with a defaulted training config");
static_assert(std::is_same<ms::Status (ms::Model::*)(ms::GraphCell, const std::shared_ptr<ms::Context> &,
                                                     const std::shared_ptr<ms::TrainCfg> &),
                           decltype(static_cast<ms::Status (ms::Model::*)(ms::GraphCell,
                                                                          const std::shared_ptr<ms::Context> &,
                                                                          const std::shared_ptr<ms::TrainCfg> &)>(
                               &ms::Model::Build))>::value,
              "Build(GraphCell, const std::shared_ptr<Context> &, const std::shared_ptr<TrainCfg> &)");
static_assert(std::is_same<ms::Status, decltype(std::declval<ms::Model &>().Predict(
                                           std::declval<const std::vector<ms::MSTensor> &>(),
                                           std::declval<std::vector<ms::MSTensor> *>()))>::value,
              "Predict(inputs, outputs) with defaulted callbacks");
static_assert(std::is_same<std::vector<ms::MSTensor>, decltype(std::declval<ms::Model &>().GetInputs())>::value,
              "GetInputs returns tensors by value");

// Tensors: names by value through the wrapper; the (name, type, shape, data, size) constructor.
static_assert(std::is_same<std::string, decltype(std::declval<const ms::MSTensor &>().Name())>::value,
              "MSTensor::Name returns a string by value");
static_assert(std::is_constructible<ms::MSTensor, const std::string &, ms::DataType, const std::vector<int64_t> &,
                                    const void *, size_t>::value,
              "MSTensor(name, type, shape, data, size)");
static_assert(std::is_same<std::shared_ptr<const void>, decltype(std::declval<const ms::MSTensor &>().Data())>::value,
              "MSTensor::Data");
static_assert(std::is_same<const std::vector<int64_t> &, decltype(std::declval<const ms::MSTensor &>().Shape())>::value,
              "MSTensor::Shape");
static_assert(std::is_same<size_t, decltype(std::declval<const ms::MSTensor &>().DataSize())>::value,
              "MSTensor::DataSize");
static_assert(std::is_same<ms::DataType, decltype(std::declval<const ms::MSTensor &>().DataType())>::value,
              "MSTensor::DataType");
