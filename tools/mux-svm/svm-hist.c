/*
 * svm-hist.c: a fixed-size log-linear histogram for latencies.
 *
 * Values below SVM_HIST_SUB get a bucket each; above, every power of two
 * is split in SVM_HIST_SUB equal buckets, so any value lands in a bucket
 * at most 1/SVM_HIST_SUB (6%) wide relative to it. Memory is constant
 * however long the run and however wild the values.
 */
#include "svm.h"

static unsigned
svm_hist_index(uint64_t v)
{
	unsigned e;

	if (v < SVM_HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	return SVM_HIST_SUB + (e - SVM_HIST_SUB_BITS) * SVM_HIST_SUB +
	    (unsigned)((v >> (e - SVM_HIST_SUB_BITS)) & (SVM_HIST_SUB - 1));
}

/* Highest value that falls in bucket i. */
static uint64_t
svm_hist_upper(unsigned i)
{
	unsigned e, sub;
	uint64_t width;

	if (i < SVM_HIST_SUB)
		return i;
	e = (i - SVM_HIST_SUB) / SVM_HIST_SUB + SVM_HIST_SUB_BITS;
	sub = (i - SVM_HIST_SUB) % SVM_HIST_SUB;
	width = (uint64_t)1 << (e - SVM_HIST_SUB_BITS);
	return ((uint64_t)(SVM_HIST_SUB + sub) << (e - SVM_HIST_SUB_BITS)) +
	    (width - 1);
}

void
svm_hist_add(struct svm_hist *h, uint64_t v)
{
	h->bucket[svm_hist_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

/* The q-quantile, rounded up to its bucket's top and capped by the max. */
uint64_t
svm_hist_quantile(const struct svm_hist *h, double q)
{
	uint64_t want, seen = 0, v;
	unsigned i;

	if (h->n == 0)
		return 0;
	want = (uint64_t)(q * (double)h->n);
	if ((double)want < q * (double)h->n)
		want++;
	if (want == 0)
		want = 1;
	for (i = 0; i < SVM_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= want) {
			v = svm_hist_upper(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}
