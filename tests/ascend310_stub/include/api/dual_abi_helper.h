// Test double of mindspore/include/api/dual_abi_helper.h (see tests/ascend310_stub/README.md).
// The real library takes and returns std::vector<char> so that it links with either libstdc++ string
// ABI; the std::string methods the app calls are inline wrappers built on these two conversions.
#ifndef STUB_MINDSPORE_INCLUDE_API_DUAL_ABI_HELPER_H_
#define STUB_MINDSPORE_INCLUDE_API_DUAL_ABI_HELPER_H_
#include <string>
#include <vector>
namespace mindspore {
inline std::vector<char> StringToChar(const std::string &s) { return std::vector<char>(s.begin(), s.end()); }
inline std::string CharToString(const std::vector<char> &c) { return std::string(c.begin(), c.end()); }
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_DUAL_ABI_HELPER_H_
