// Test double of mindspore/include/api/data_type.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_DATA_TYPE_H_
#define STUB_MINDSPORE_INCLUDE_API_DATA_TYPE_H_
namespace mindspore {
// The element types the app and the stub runtime use, with the real values.
enum class DataType : int {
  kTypeUnknown = 0,
  kNumberTypeUInt8 = 37,
  kNumberTypeFloat32 = 43,
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_DATA_TYPE_H_
