// Command hello is the start-up baseline for benchmarks: a static Go
// program that does nothing but exit.
package main

func main() {}
