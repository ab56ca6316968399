"""libvirt's CPU map and the decoders that name a CPU from it (pure): used
by every part that names a CPU as libvirt does (the host CPU model, the
host-model CPU of domain capabilities)."""
