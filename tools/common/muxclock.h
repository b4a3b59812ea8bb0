/*
 * muxclock.h: the two clocks every program here reads. CLOCK_REALTIME for
 * what goes on the wire (time_ns, ingest_time_ns); CLOCK_MONOTONIC for
 * timeouts, rates and latencies measured by one process.
 */
#ifndef MUX_MUXCLOCK_H
#define MUX_MUXCLOCK_H

#include <stdint.h>

/* muxclock.c */
uint64_t	muxclock_real_ns(void);
uint64_t	muxclock_mono_ns(void);

#endif
