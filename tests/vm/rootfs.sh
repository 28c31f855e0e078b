# shellcheck shell=bash
# Sourced by tests/vm/run and tests/vm/mkinitramfs: how a guest of a kernel
# reaches the host's files (its root, the repository, the results share).
#   tests_vm_rootfs CONFIG  prints 9p (virtio-9p: QEMU serves the shares
#   itself) or virtiofs (a kernel without 9p, e.g. Debian's cloud flavour,
#   which has CONFIG_NET_9P unset but CONFIG_VIRTIO_FS=y: one virtiofsd per
#   share); fails, saying why, when the kernel has neither.
tests_vm_rootfs() {
	local config=$1
	if grep -qE '^CONFIG_NET_9P_VIRTIO=[ym]$' "$config" && grep -qE '^CONFIG_9P_FS=[ym]$' "$config"; then
		echo 9p
	elif grep -qE '^CONFIG_VIRTIO_FS=[ym]$' "$config"; then
		echo virtiofs
	else
		echo "tests/vm: $config has neither virtio-9p nor virtio-fs: the guest cannot reach its root" >&2
		return 1
	fi
}
