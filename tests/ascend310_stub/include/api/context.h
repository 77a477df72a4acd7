// Test double of mindspore/include/api/context.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_CONTEXT_H_
#define STUB_MINDSPORE_INCLUDE_API_CONTEXT_H_
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mindspore {
class DeviceInfoContext {
 public:
  virtual ~DeviceInfoContext() = default;
};

class Ascend310DeviceInfo : public DeviceInfoContext {
 public:
  void SetDeviceID(uint32_t device_id) { device_id_ = device_id; }
  uint32_t GetDeviceID() const { return device_id_; }
  void SetPrecisionMode(const std::string &mode) { precision_mode_ = mode; }
  void SetOpSelectImplMode(const std::string &mode) { op_select_impl_mode_ = mode; }

 private:
  uint32_t device_id_ = 0;
  std::string precision_mode_;
  std::string op_select_impl_mode_;
};

class Context {
 public:
  std::vector<std::shared_ptr<DeviceInfoContext>> &MutableDeviceInfo() { return device_info_; }

 private:
  std::vector<std::shared_ptr<DeviceInfoContext>> device_info_;
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_CONTEXT_H_
