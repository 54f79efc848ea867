// Command hello is the start-up baseline for benchmarks: the static Go
// hello world the performance targets are stated against.
package main

import "fmt"

func main() { fmt.Println("hello, world") }
