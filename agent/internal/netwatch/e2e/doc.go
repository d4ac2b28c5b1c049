// Package e2e runs the real hub and agent binaries inside a network
// namespace the test makes, changes the namespace's addresses with ip(8),
// and checks that the hub's /api/devices follows. It needs root and
// iproute2; every test and benchmark is named TestNetns*/BenchmarkNetns* so
// the qemu-arm run can exclude them.
package e2e
