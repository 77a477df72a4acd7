// Test double of mindspore/include/api/serialization.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_SERIALIZATION_H_
#define STUB_MINDSPORE_INCLUDE_API_SERIALIZATION_H_
#include <string>
#include <vector>

#include "include/api/dual_abi_helper.h"
#include "include/api/graph.h"
#include "include/api/model.h"
#include "include/api/status.h"
#include "include/api/types.h"

namespace mindspore {
class Serialization {
 public:
  inline static Status Load(const std::string &file, ModelType model_type, Graph *graph, const Key &dec_key = {},
                            const std::string &dec_mode = kDecModeAesGcm);

 private:
  static Status Load(const std::vector<char> &file, ModelType model_type, Graph *graph);
  static Status Load(const std::vector<char> &file, ModelType model_type, Graph *graph, const Key &dec_key,
                     const std::vector<char> &dec_mode);
};

Status Serialization::Load(const std::string &file, ModelType model_type, Graph *graph, const Key &dec_key,
                           const std::string &dec_mode) {
  return Load(StringToChar(file), model_type, graph, dec_key, StringToChar(dec_mode));
}
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_SERIALIZATION_H_
