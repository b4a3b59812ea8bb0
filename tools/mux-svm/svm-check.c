/*
 * svm-check.c: what the MUX promises about seq, checked per connection.
 *
 * Protocol 4.4-4.7 and 5: within one epoch an SVM sees ascending seq, and
 * every event of its subscription either in a Delivery or inside a Gap.
 *
 *   order_errors  a seq not above the previous one received on this
 *                 connection in this epoch, or one a Gap had given up.
 *   duplicates    a seq at or below this MUX's resume point (processed on
 *                 an earlier connection): a replay beyond what Register
 *                 asked for, not an order error.
 *   holes         seqs that neither came nor were covered by a Gap.
 *                 Only with an unfiltered subscription (all classes, all
 *                 VMs): with a filter a missing seq may simply not match,
 *                 so holes stay 0 and holes_checked false.
 *
 * "covered" is the highest seq accounted for; it starts below resume_from
 * after a resume in the same epoch, below Registered.next_seq otherwise
 * (a live start), so a replay starting at resume_from, or a Gap reaching
 * up to the first delivery, is clean.
 */
#include <string.h>

#include "svm.h"

int
svm_check_holes_checked(void)
{
	return svm_opt.classes == WIRE_CLASS_ALL && svm_opt.ncids == 0;
}

void
svm_check_registered(struct svm_track *t, struct svm_resume *r,
    uint64_t epoch, uint64_t next_seq, uint64_t resume_epoch,
    uint64_t resume_from)
{
	memset(t, 0, sizeof(*t));
	t->resume = r;
	t->epoch = epoch;
	t->live_from = next_seq;
	if (resume_epoch == epoch && resume_from != 0) {
		t->covered = resume_from - 1;
		t->covered_known = 1;
	} else if (next_seq != 0) {
		t->covered = next_seq - 1;
		t->covered_known = 1;
	}
}

static void
svm_check_cover(struct svm_track *t, uint64_t first, uint64_t last)
{
	if (svm_check_holes_checked() && t->covered_known &&
	    first > t->covered + 1)
		svm_stats.holes += first - t->covered - 1;
	if (!t->covered_known || last > t->covered)
		t->covered = last;
	t->covered_known = 1;
}

enum svm_check_result
svm_check_delivery(struct svm_track *t, uint64_t seq)
{
	if ((t->hi_recv != 0 && seq <= t->hi_recv) ||
	    (t->gap_hi != 0 && seq <= t->gap_hi))
		return SVM_CHECK_ORDER;
	t->hi_recv = seq;
	t->any_rx = 1;
	if (svm_state_seen(t->resume, t->epoch, seq)) {
		if (!t->covered_known || seq > t->covered)
			t->covered = seq;
		t->covered_known = 1;
		return SVM_CHECK_DUPLICATE;
	}
	svm_check_cover(t, seq, seq);
	return SVM_CHECK_NEW;
}

void
svm_check_gap(struct svm_track *t, const Mux__Gap *g)
{
	if (g->reason == MUX__GAP__REASON__EPOCH_CHANGED) {
		/*
		 * Numbers of the old epoch: nothing to check against. Before
		 * any delivery it confirms the live start Registered gave.
		 */
		t->hi_recv = 0;
		t->gap_hi = 0;
		if (!t->any_rx && t->live_from != 0) {
			t->covered = t->live_from - 1;
			t->covered_known = 1;
		} else
			t->covered_known = 0;
		return;
	}
	if (t->hi_recv != 0 && g->first_seq <= t->hi_recv)
		svm_stats.gap_overlaps++;
	t->any_rx = 1;
	svm_check_cover(t, g->first_seq, g->last_seq);
	if (g->last_seq > t->gap_hi)
		t->gap_hi = g->last_seq;
}
