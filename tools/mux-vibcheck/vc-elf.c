/*
 * vc-elf.c: is an executable fully static x86-64?
 *
 * ESXi's C library is older than the build machine's, and ESXi 8 runs only
 * what a VIB installed, so an executable in the payload must load nothing:
 * ELF64, little-endian, x86-64, ET_EXEC (or a static-pie ET_DYN), no
 * PT_INTERP (no program interpreter) and no DT_NEEDED entry in a
 * PT_DYNAMIC segment. Every offset is checked against the file's size.
 */
#include <elf.h>
#include <stdio.h>
#include <string.h>

#include "vibcheck.h"

int
vc_elf_is_elf(const unsigned char *p, size_t n)
{
	return n >= SELFMAG && memcmp(p, ELFMAG, SELFMAG) == 0;
}

/* File offset of virtual address va, through the PT_LOAD segments. */
static int
vc_elf_va2off(const Elf64_Phdr *ph, size_t nph, uint64_t va, uint64_t *off)
{
	for (size_t i = 0; i < nph; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (va >= ph[i].p_vaddr && va - ph[i].p_vaddr < ph[i].p_filesz) {
			*off = ph[i].p_offset + (va - ph[i].p_vaddr);
			return 0;
		}
	}
	return -1;
}

int
vc_elf_check_static(const unsigned char *p, size_t n, char *why,
    size_t whylen)
{
	Elf64_Ehdr		 eh;
	Elf64_Phdr		 ph[256];
	const Elf64_Phdr	*dyn = NULL;
	uint64_t		 strtab = 0, stroff;
	int			 have_strtab = 0;

	if (n < sizeof(eh) || !vc_elf_is_elf(p, n)) {
		snprintf(why, whylen, "not an ELF file");
		return -1;
	}
	memcpy(&eh, p, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64) {
		snprintf(why, whylen, "not ELF64 (32-bit?)");
		return -1;
	}
	if (eh.e_ident[EI_DATA] != ELFDATA2LSB) {
		snprintf(why, whylen, "not little-endian");
		return -1;
	}
	if (eh.e_machine != EM_X86_64) {
		snprintf(why, whylen, "machine %u, not x86-64",
		    (unsigned)eh.e_machine);
		return -1;
	}
	if (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) {
		snprintf(why, whylen, "ELF type %u is not an executable",
		    (unsigned)eh.e_type);
		return -1;
	}
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phnum > sizeof(ph) / sizeof(ph[0]) || eh.e_phoff > n ||
	    (n - eh.e_phoff) / sizeof(Elf64_Phdr) < eh.e_phnum) {
		snprintf(why, whylen, "bad program header table");
		return -1;
	}
	memcpy(ph, p + eh.e_phoff, eh.e_phnum * sizeof(Elf64_Phdr));
	for (size_t i = 0; i < eh.e_phnum; i++) {
		if (ph[i].p_type == PT_INTERP) {
			if (ph[i].p_offset < n && ph[i].p_filesz > 0 &&
			    ph[i].p_filesz <= n - ph[i].p_offset)
				snprintf(why, whylen, "dynamically linked: "
				    "program interpreter (PT_INTERP) %.*s",
				    (int)strnlen((const char *)p +
				    ph[i].p_offset, ph[i].p_filesz),
				    (const char *)p + ph[i].p_offset);
			else
				snprintf(why, whylen, "dynamically linked: has "
				    "a program interpreter (PT_INTERP)");
			return -1;
		}
		if (ph[i].p_type == PT_DYNAMIC)
			dyn = &ph[i];
	}
	if (dyn == NULL) {
		if (eh.e_type == ET_DYN) {
			snprintf(why, whylen, "ET_DYN without a dynamic "
			    "section");
			return -1;
		}
		return 0;
	}
	if (dyn->p_offset > n || dyn->p_filesz > n - dyn->p_offset) {
		snprintf(why, whylen, "PT_DYNAMIC outside the file");
		return -1;
	}
	/* Static-pie: a dynamic section for self-relocation, no NEEDED. */
	for (size_t off = 0; off + sizeof(Elf64_Dyn) <= dyn->p_filesz;
	    off += sizeof(Elf64_Dyn)) {
		Elf64_Dyn d;

		memcpy(&d, p + dyn->p_offset + off, sizeof(d));
		if (d.d_tag == DT_NULL)
			break;
		if (d.d_tag == DT_STRTAB) {
			strtab = d.d_un.d_ptr;
			have_strtab = 1;
		}
	}
	for (size_t off = 0; off + sizeof(Elf64_Dyn) <= dyn->p_filesz;
	    off += sizeof(Elf64_Dyn)) {
		Elf64_Dyn d;

		memcpy(&d, p + dyn->p_offset + off, sizeof(d));
		if (d.d_tag == DT_NULL)
			break;
		if (d.d_tag != DT_NEEDED)
			continue;
		if (have_strtab && vc_elf_va2off(ph, eh.e_phnum, strtab,
		    &stroff) == 0 && stroff < n && d.d_un.d_val < n - stroff)
			snprintf(why, whylen, "needs shared library %.*s "
			    "(DT_NEEDED)", (int)strnlen((const char *)p +
			    stroff + d.d_un.d_val, n - stroff - d.d_un.d_val),
			    (const char *)p + stroff + d.d_un.d_val);
		else
			snprintf(why, whylen, "needs a shared library "
			    "(DT_NEEDED)");
		return -1;
	}
	return 0;
}
