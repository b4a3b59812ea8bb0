/*
 * svm-vm.c: the last VmStatus seen for each cid (protocol 4.9).
 *
 * Full state comes after every Registered and a change after that, so the
 * table is simply overwritten. It is bounded: cids beyond SVM_VMS_MAX are
 * counted in vm_status but not remembered.
 */
#include <stddef.h>

#include "svm.h"

struct svm_vm {
	uint32_t		 cid;
	Mux__VmStatus__State	 state;
};

static struct svm_vm	svm_vms[SVM_VMS_MAX];
static size_t		svm_nvms;

void
svm_vm_status(const Mux__VmStatus *vs)
{
	uint32_t cid = vs->vm != NULL ? vs->vm->cid : 0;
	size_t i;

	for (i = 0; i < svm_nvms; i++)
		if (svm_vms[i].cid == cid)
			break;
	if (i == svm_nvms) {
		if (svm_nvms == SVM_VMS_MAX)
			return;
		svm_vms[svm_nvms++].cid = cid;
	}
	svm_vms[i].state = vs->state;
}

size_t
svm_vm_known(void)
{
	return svm_nvms;
}

size_t
svm_vm_connected(void)
{
	size_t i, n = 0;

	for (i = 0; i < svm_nvms; i++)
		if (svm_vms[i].state == MUX__VM_STATUS__STATE__CONNECTED)
			n++;
	return n;
}
