// Test double of mindspore/include/api/graph.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_GRAPH_H_
#define STUB_MINDSPORE_INCLUDE_API_GRAPH_H_
#include <cstddef>
#include <memory>

#include "include/api/status.h"
#include "include/api/types.h"
namespace mindspore {
// A loaded model; only Serialization::Load fills one (there is no constructor from a path).
class Graph {
 public:
  class GraphData;
  Graph();
  explicit Graph(const std::shared_ptr<GraphData> &graph_data);
  explicit Graph(std::shared_ptr<GraphData> &&graph_data);
  explicit Graph(std::nullptr_t);
  ~Graph();

  enum ModelType ModelType() const;
  bool operator==(std::nullptr_t) const;
  bool operator!=(std::nullptr_t) const;

 private:
  friend class GraphCell;
  friend class ModelImpl;
  std::shared_ptr<GraphData> graph_data_;
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_GRAPH_H_
