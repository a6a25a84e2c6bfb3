# -*- coding: utf-8 -*-
# Copyright: contributors to webhosting.pods
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Limits and the closed sets of values the policy engine accepts."""

MAX_DOCUMENT_BYTES = 256 * 1024  # a pod spec or a policy file
MAX_ALIASES = 100  # YAML aliases (*name) in one document
MAX_NODES = 20000  # YAML nodes once every alias is expanded (the YAML-bomb guard)
MAX_DEPTH = 40  # nesting depth, aliases expanded
MAX_ENV_FILE_BYTES = 64 * 1024
MAX_CONTAINERS_LIMIT = 100  # upper bound for the policy's max_containers
DEFAULT_MAX_CONTAINERS = 10
# Size of an in-memory emptyDir without sizeLimit (policy default_memory_volume_size).
DEFAULT_MEMORY_VOLUME_SIZE = "64Mi"
DEFAULT_CONTAINER_LOG_MAX = "100Mi"  # the pod's container log between rotations
# The annotation of a rendered pod that lists its in-memory volumes (claim=bytes,...): the
# runner creates each as a tmpfs volume of that size before podman kube play.
# The engine's own annotations of a rendered pod, for the runner; never given to podman.
ENGINE_ANNOTATION_PREFIX = "webhosting.pods/"
MEMORY_VOLUMES_ANNOTATION = ENGINE_ANNOTATION_PREFIX + "memory-volumes"
# The container probes, normalised (pod_policy.probes); run by the pod unit's runner.
PROBES_ANNOTATION = ENGINE_ANNOTATION_PREFIX + "probes"
MAX_ID = 4294967294  # largest uid/gid

NETWORK_MODES = ("default", "none", "pasta", "slirp4netns")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
RESERVED_LABEL_PREFIXES = ("io.podman.", "io.containers.")
# Container paths a pod may neither mount over nor work in, with everything below them (the
# kernel's interfaces); "/" is refused as a mount destination only.  SHM_PATH is the one
# exception: an in-memory emptyDir may be mounted on it, and a working directory may be in it.
KERNEL_PATHS = ("/proc", "/sys", "/dev")
SHM_PATH = "/dev/shm"
# Image digests: the algorithms the OCI image spec registers (v1.1) and the length of their
# lowercase hex encoding.
DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
