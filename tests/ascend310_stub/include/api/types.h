// Test double of mindspore/include/api/types.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_TYPES_H_
#define STUB_MINDSPORE_INCLUDE_API_TYPES_H_
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "include/api/data_type.h"
#include "include/api/dual_abi_helper.h"

namespace mindspore {
enum ModelType : uint32_t {
  kMindIR = 0,
  kAIR = 1,
  kOM = 2,
  kONNX = 3,
  kMindIR_Lite = 4,
  kUnknownType = 0xFFFFFFFF,
};

// Model decryption key; the default (len 0) means a plain model.
using Key = struct Key {
  size_t max_key_len = 32;
  size_t len = 0;
  unsigned char key[32] = {0};
  Key() : len(0) {}
};

constexpr char kDecModeAesGcm[] = "AES-GCM";

class MSTensor {
 public:
  class Impl;

  MSTensor();
  explicit MSTensor(const std::shared_ptr<Impl> &impl);
  // Copies |data_len| bytes from |data|, or allocates them zeroed when |data| is null.
  inline MSTensor(const std::string &name, DataType type, const std::vector<int64_t> &shape, const void *data,
                  size_t data_len);
  ~MSTensor();

  inline std::string Name() const;
  enum DataType DataType() const;
  const std::vector<int64_t> &Shape() const;
  int64_t ElementNum() const;
  std::shared_ptr<const void> Data() const;
  void *MutableData();
  size_t DataSize() const;

 private:
  MSTensor(const std::vector<char> &name, enum DataType type, const std::vector<int64_t> &shape, const void *data,
           size_t data_len);
  std::vector<char> CharName() const;

  std::shared_ptr<Impl> impl_;
};

MSTensor::MSTensor(const std::string &name, enum DataType type, const std::vector<int64_t> &shape, const void *data,
                   size_t data_len)
    : MSTensor(StringToChar(name), type, shape, data, data_len) {}
std::string MSTensor::Name() const { return CharToString(CharName()); }

// Arguments of the per-kernel callbacks of Model::Predict.
struct MSCallBackParam {
  std::string node_name;
  std::string node_type;
  double execute_time;
};

using MSKernelCallBack = std::function<bool(const std::vector<MSTensor> &inputs,
                                            const std::vector<MSTensor> &outputs, const MSCallBackParam &op_info)>;
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_TYPES_H_
