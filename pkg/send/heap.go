package send

import "container/heap"

// jobHeap orders waiting jobs by their next attempt.
type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h jobHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *jobHeap) Push(x any) {
	j := x.(*job)
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h = old[:len(old)-1]
	j.index = -1
	return j
}

func (h *jobHeap) add(j *job) { heap.Push(h, j) }
func (h *jobHeap) pop() *job  { return heap.Pop(h).(*job) }
func (h *jobHeap) fix()       { heap.Init(h) }
