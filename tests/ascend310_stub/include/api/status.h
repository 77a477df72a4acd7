// Test double of mindspore/include/api/status.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_STATUS_H_
#define STUB_MINDSPORE_INCLUDE_API_STATUS_H_
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "include/api/dual_abi_helper.h"
namespace mindspore {
// The component a status code comes from sits in its top four bits.
enum CompCode : uint32_t { kCore = 0x00000000u, kMD = 0x10000000u, kME = 0x20000000u, kMC = 0x30000000u };

// The codes the app and the stub runtime use, with the real values.
enum StatusCode : uint32_t {
  kSuccess = 0,
  kCoreFailed = kCore | 0x1,
  kMEFailed = kME | 0x1,
  kMEInvalidInput = kME | 0x2,
  kMCFailed = kMC | 0x1,
  kMCDeviceError = kMC | 0x2,
  kMCInvalidInput = kMC | 0x3,
  kMCInvalidArgs = kMC | 0x4,
};

class Status {
 public:
  Status();
  inline Status(enum StatusCode status_code, const std::string &status_msg = "");  // NOLINT(runtime/explicit)
  ~Status() = default;
  enum StatusCode StatusCode() const;
  inline std::string ToString() const;
  bool operator==(const Status &other) const;
  bool operator==(enum StatusCode other_code) const;
  bool operator!=(const Status &other) const;
  bool operator!=(enum StatusCode other_code) const;
  bool IsOk() const;
  bool IsError() const;

 private:
  Status(enum StatusCode status_code, const std::vector<char> &status_msg);
  std::vector<char> ToCString() const;

  struct Data;
  std::shared_ptr<Data> data_;
};

Status::Status(enum StatusCode status_code, const std::string &status_msg)
    : Status(status_code, StringToChar(status_msg)) {}
std::string Status::ToString() const { return CharToString(ToCString()); }
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_STATUS_H_
