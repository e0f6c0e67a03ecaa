/* monotime: milliseconds on the monotonic clock, for timeouts, waits and
 * the durations the log reports. */
#ifndef VMSTOREFS_MONOTIME_H
#define VMSTOREFS_MONOTIME_H
#include <stdint.h>
#include <time.h>

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
#endif
