"""Domain capabilities (``virsh domcapabilities``): what a VM may use here
for one emulator, arch, machine and virt type."""
