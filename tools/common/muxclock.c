/*
 * muxclock.c: see muxclock.h.
 */
#include <time.h>

#include "muxclock.h"

static uint64_t
muxclock_read(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
muxclock_real_ns(void)
{
	return muxclock_read(CLOCK_REALTIME);
}

uint64_t
muxclock_mono_ns(void)
{
	return muxclock_read(CLOCK_MONOTONIC);
}
