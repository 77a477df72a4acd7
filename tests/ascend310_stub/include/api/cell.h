// Test double of mindspore/include/api/cell.h (see tests/ascend310_stub/README.md).
#ifndef STUB_MINDSPORE_INCLUDE_API_CELL_H_
#define STUB_MINDSPORE_INCLUDE_API_CELL_H_
#include "include/api/graph.h"
namespace mindspore {
class GraphCell {
 public:
  GraphCell() = default;
  explicit GraphCell(const Graph &graph) : graph_(graph) {}
  const Graph &GetGraph() const { return graph_; }

 private:
  Graph graph_;
};
}  // namespace mindspore
#endif  // STUB_MINDSPORE_INCLUDE_API_CELL_H_
