// Test double of mindspore/include/api/graph.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_GRAPH_H_
#define STUB_MINDSPORE_INCLUDE_API_GRAPH_H_
#include <string>
namespace mindspore {
class Graph {
 public:
  Graph() = default;
  explicit Graph(const std::string &source) : source_(source) {}
  const std::string &Source() const { return source_; }
  bool operator==(std::nullptr_t) const { return source_.empty(); }
  bool operator!=(std::nullptr_t) const { return !source_.empty(); }

 private:
  std::string source_;
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_GRAPH_H_
