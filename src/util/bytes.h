/* bytes: big-endian fields of on-disk headers (qcow2 is big-endian). */
#ifndef VMSTOREFS_BYTES_H
#define VMSTOREFS_BYTES_H

#include <stdint.h>

static inline uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

#endif
