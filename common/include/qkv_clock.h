/*  qkv_clock.h - the two clocks qkv reads: the monotonic clock for
    deadlines and timers, and the wall clock the leader stamps entries
    with (session expiry counts in that log time).
*/
#ifndef QKV_CLOCK_H
#define QKV_CLOCK_H

#include <stdint.h>

/* Microseconds on the monotonic clock. */
int64_t qkv_now_us(void);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t qkv_wall_ms(void);

#endif
