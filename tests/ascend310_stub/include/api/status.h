// Test double of mindspore/include/api/status.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_STATUS_H_
#define STUB_MINDSPORE_INCLUDE_API_STATUS_H_
#include <cstdint>
#include <string>
namespace mindspore {
enum StatusCode : uint32_t { kSuccess = 0, kMCFailed = 1, kMEFailed = 2, kMEInvalidInput = 3 };

class Status {
 public:
  Status() : code_(kSuccess) {}
  Status(enum StatusCode code, const std::string &message = "") : code_(code), message_(message) {}  // NOLINT
  enum StatusCode StatusCode() const { return code_; }
  std::string ToString() const { return message_; }
  bool operator==(enum StatusCode code) const { return code_ == code; }
  bool operator!=(enum StatusCode code) const { return code_ != code; }

 private:
  enum StatusCode code_;
  std::string message_;
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_STATUS_H_
