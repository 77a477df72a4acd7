// Test double of mindspore/include/api/types.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_TYPES_H_
#define STUB_MINDSPORE_INCLUDE_API_TYPES_H_
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "include/api/data_type.h"

namespace mindspore {
enum ModelType : uint32_t { kMindIR = 0, kAIR = 1, kOM = 2, kONNX = 3, kUnknownType = 0xFFFFFFFF };

class MSTensor {
 public:
  MSTensor();
  // Copies |data_len| bytes from |data|, or allocates them zeroed when |data| is null.
  MSTensor(const std::string &name, enum DataType type, const std::vector<int64_t> &shape, const void *data,
           size_t data_len);
  std::string Name() const;
  enum DataType DataType() const;
  const std::vector<int64_t> &Shape() const;
  int64_t ElementNum() const;
  std::shared_ptr<const void> Data() const;
  void *MutableData();
  size_t DataSize() const;

 private:
  std::string name_;
  enum DataType type_;
  std::vector<int64_t> shape_;
  std::shared_ptr<std::vector<unsigned char>> data_;
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_TYPES_H_
