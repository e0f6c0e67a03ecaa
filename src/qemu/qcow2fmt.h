/* qcow2fmt: the qcow2 header's layout and qemu's limits, shared by the
 * code that reads (qcow2check) and writes (qcow2create) headers.
 * QEMU docs/interop/qcow2.txt; the limits are block/qcow2.h's. */
#ifndef VMSTOREFS_QCOW2FMT_H
#define VMSTOREFS_QCOW2FMT_H

#include <stdint.h>

/* Byte offsets in the fixed header. */
enum {
    H_MAGIC = 0,
    H_VERSION = 4,
    H_BACKING_OFFSET = 8,
    H_BACKING_SIZE = 16,
    H_CLUSTER_BITS = 20,
    H_SIZE = 24,
    H_CRYPT = 32,
    H_L1_SIZE = 36,
    H_L1_OFFSET = 40,
    H_REFTABLE_OFFSET = 48,
    H_REFTABLE_CLUSTERS = 56,
    H_NB_SNAPSHOTS = 60,
    H_SNAPSHOTS_OFFSET = 64,
    H_V2_LENGTH = 72,
    H_INCOMPAT = 72, /* v3 from here on */
    H_COMPAT = 80,
    H_AUTOCLEAR = 88,
    H_REFCOUNT_ORDER = 96,
    H_LENGTH = 100,
    H_V3_LENGTH = 104,
    H_COMPRESSION = 104, /* when the header is longer than 104 bytes */
};

#define QCOW2_MAGIC "QFI\xfb"
#define MIN_CLUSTER_BITS 9
#define MAX_CLUSTER_BITS 21
#define MAX_L1_BYTES ((uint64_t)32 << 20)
#define MAX_REFTABLE_BYTES ((uint64_t)8 << 20)
#define MAX_SNAPSHOTS 65536
#define SNAPSHOT_HEADER_BYTES 40
#define BACKING_NAME_MAX 1023
#define INCOMPAT_DIRTY (1u << 0)
#define INCOMPAT_CORRUPT (1u << 1)
#define INCOMPAT_DATA_FILE (1u << 2)
#define INCOMPAT_COMPRESSION (1u << 3)
#define INCOMPAT_EXTL2 (1u << 4)
#define INCOMPAT_KNOWN 0x1fu

/* Header extension types. */
#define EXT_END 0u
#define EXT_BACKING_FORMAT 0xE2792ACAu
#define EXT_FEATURE_TABLE 0x6803F857u
#define EXT_DATA_FILE 0x44415441u

#endif
