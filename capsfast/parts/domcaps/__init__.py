"""Domain capabilities (``virsh domcapabilities``), the part's
declarations (pure data): what a VM may use here for one emulator, arch,
machine and virt type.

Its files: ``read`` (I/O through the source), ``parse`` (QMP transcripts,
firmware descriptors and swtpm's answer, text to values), ``decide`` (the
QMP rules) with ``cpu``, ``firmware`` and ``qapi`` (pure rules of one
subject each), ``model`` (the records); ``qmp`` runs QEMU (sent alone to
a remote host, so standard library only) and ``cache`` keeps its
transcripts (I/O, live host only).

Not a Host field (it is asked per emulator, arch, machine and virt type):
``capsfast.domain_capabilities`` reads it through ``read``.  What a
recording keeps for it: the firmware descriptor directories, a
placeholder for each loader image libvirt would list, /dev/vfio/vfio and
the IOMMU groups listing; and, kept by ``capsfast record`` itself (it
runs them), each x86 emulator's QMP transcript as
``qemu/<emulator basename>.replies`` and what ``swtpm_setup
--print-capabilities`` printed."""
NAME = "domcaps"
FIELDS: "tuple[str, ...]" = ()
UNKNOWN: "dict[str, object]" = {}

# The same paths as firmware.DATA_DIR, CONF_DIR and BUILTIN_LOADERS and
# read.VFIO_DEVICE, read.IOMMU_GROUPS (held to them by the tests), written
# out so that a recording's plan imports nothing more.
_FIRMWARE_DIRS = ("/usr/share/qemu/firmware", "/etc/qemu/firmware")
_BUILTIN_IMAGES = ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_CODE.secboot.fd",
                   "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF32_CODE.fd")
CAPTURE: "dict[str, object]" = {
    "files": [["domcaps_vfio", "/dev/vfio/vfio", "stat", 0, 0],
              ["domcaps_iommu_groups", "/sys/kernel/iommu_groups", "stat", 0, 0]]
             + [["domcaps_loader_%d" % i, image, "stat", 0, 0] for i, image in enumerate(_BUILTIN_IMAGES)],
    "list_dirs": ["/sys/kernel/iommu_groups"],
    "globs": [["file", directory + "/*"] for directory in _FIRMWARE_DIRS],
}
