/* check: the store's fsck (`vmstorefs --check STORE`, `vmstorefs-ctl
 * STORE check`), and its repair of what is safe to repair.
 *
 * A check reads; it changes nothing. Each problem found is a finding of
 * one kind (the table in check.c names them; man vmstorefs(8) lists
 * them), naming its VM and file. What it looks at:
 *   - every image of every VM (disks/, snapshots/<S>/, hidden ones):
 *     its header with the daemon's own parser (qcow2check.h: bounded,
 *     no qemu-img), its backing name and format (chain.h's rules, and
 *     inside the VM), the graph of what backs onto what: loops, depth,
 *     missing parents, parents shared by two disks, and files nothing
 *     references (orphans);
 *   - every domain.xml and snapshot.xml: safe XML (xmlsafe.h), libvirt's
 *     schema (xmlschema.h; not in the cheap check), names that agree with
 *     the directories, disk sources where the store puts them and nothing
 *     outside the VM, snapshot parents that exist, snapshots whose images
 *     are missing; uuids, MACs and names no two VMs share;
 *   - the journal: records an operation left, temporary directories no
 *     record names (a record whose VM's lock is held is an operation
 *     running in a mount: not a finding);
 *   - with qemu-img (not in the cheap check): `qemu-img check` of every
 *     qcow2 image on its own (backing null, over a descriptor the check
 *     opened: qspec.h), in parallel, each with a time bound, for leaked
 *     clusters and corruptions. A whole chain is never given to qemu-img:
 *     on a backing loop it never returns;
 *   - owners and modes: an image looser than the image it backs onto
 *     (the daemon's overlays take their source's: perm.h), a snapshot.xml
 *     looser than its domain.xml.
 *
 * Repair (check_opts.repair) first finishes or rolls back what the
 * journal holds (the recovery a mount runs), then, under each VM's lock
 * taken exclusive, fixes what is safe: leaked clusters (qemu-img check
 * -r leaks, per image), a backing name whose missing target has one
 * unambiguous stand-in in the VM (relinked in place), a missing
 * snapshot.xml (regenerated from the chain and the definition), orphans
 * (moved to STORE/lost+found/<vm>/..., never deleted). Everything else is
 * reported and left.
 *
 * Locks are taken as every operation takes them (vmlock.h): a check holds
 * each VM's lock shared while it reads the VM, so it is safe beside a
 * running mount; a VM whose lock stays busy is skipped and said so (an
 * operational error). */
#ifndef VMSTOREFS_CHECK_H
#define VMSTOREFS_CHECK_H

#include "store/store.h"
#include "util/names.h"

#include <libxml/tree.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum check_kind {
    CK_BAD_HEADER,
    CK_BACKING_ESCAPE,
    CK_BACKING_NO_FORMAT,
    CK_BACKING_LOOP,
    CK_CHAIN_TOO_DEEP,
    CK_BACKING_MISSING,
    CK_SHARED_PARENT,
    CK_DISK_MISSING,
    CK_SNAPXML_MISSING,
    CK_SNAP_FILE_MISSING,
    CK_SNAP_PARENT,
    CK_ORPHAN,
    CK_XML_UNSAFE,
    CK_XML_SCHEMA,
    CK_XML_OUTSIDE,
    CK_NAME_MISMATCH,
    CK_DUP_UUID,
    CK_DUP_MAC,
    CK_DUP_NAME,
    CK_JOURNAL,
    CK_JOURNAL_STRAY,
    CK_LEAKS,
    CK_CORRUPT,
    CK_TIMEOUT,
    CK_PERM_LOOSE,
    CK_COUNT
};

/* "bad-header", "backing-loop"...: what the reports print. */
const char *check_kind_name(enum check_kind k);

struct check_finding {
    enum check_kind kind;
    char *vm; /* "" for the store itself */
    char *file; /* absolute */
    char *detail;
    bool repaired;
    char *action; /* what the repair did, or why it left it; NULL when not tried */
};

struct check_report {
    char store[PATH_MAX];
    bool repair;
    bool cheap;
    struct check_finding *f;
    size_t n, cap;
    size_t vms, images, xml_files, qemu_checks;
    size_t counted; /* images whose refcounts were counted (qcow2refs.h) */
    size_t busy; /* VMs skipped: an operation held them (skip_busy) */
    /* Operational errors (fsck's 8): a VM that could not be locked or
     * read, the journal unreadable. One line each, newline-separated. */
    char *oper;
    double seconds;
};

struct check_opts {
    bool repair;
    /* The mount's check: headers, chains, XML safety and paths, the
     * journal; no qemu-img, no schema. */
    bool cheap;
    /* Take the VMs' locks (vmlock.h); a read-only mount takes none. */
    bool lock;
    unsigned timeout_sec; /* each qemu-img; 0: CHECK_TIMEOUT_DEFAULT */
    unsigned parallel; /* qemu-img run at once; 0: two per CPU */
    /* Leave the journal out: the mount's own recovery, just before its
     * check, reports what it finished and what it left (and the merges
     * it hands to the background worker are not left over). */
    bool no_journal;
    /* The mount's check runs beside the mount serving: a VM an operation
     * holds is skipped and counted (check_report.busy), not waited for,
     * and *stop (when set) ends the check between VMs (unmounting). */
    bool skip_busy;
    const atomic_bool *stop;
};

#define CHECK_TIMEOUT_DEFAULT 120

/* Runs the check (and the repair) of the store; rep is filled (free it
 * with check_report_free). 0, or -errno when the store itself cannot be
 * read (msg says why). */
int check_run(const struct store *s, const struct check_opts *o, struct check_report *rep,
              char *msg, size_t msgsz);
void check_report_free(struct check_report *rep);

/* fsck(8)'s exit status: 0 clean, 1 every finding repaired, 4 findings
 * left, 8 an operational error (or'ed, as fsck does: 5 = some repaired,
 * some left). */
int check_exit_status(const struct check_report *rep);
/* The report, one line per finding and a summary (human), or one JSON
 * object. */
void check_print(FILE *out, const struct check_report *rep, bool json);
/* What both front ends do: check_run, the report on out, and the exit
 * status (8 when the store could not be read: msg says why). */
int check_main(const struct store *s, const struct check_opts *o, bool json, FILE *out,
               char *msg, size_t msgsz);
/* One line for a log: "clean", or counts by kind. */
void check_summary(const struct check_report *rep, char *out, size_t outsz);

/* The snapshots of a VM being imported (import.h, checkimport.c), with
 * dom the definition about to take effect: 0 with, in out, the
 * snapshot.xml to write for each snapshot that has none; or -EINVAL
 * (malformed: a header, a loop, a missing file, XML), -EACCES (a backing
 * name or a snapshot.xml naming a file outside the VM) with the reason
 * in msg. The caller holds the VM's lock. */
struct check_import_xml {
    char name[NAME_MAX_LEN + 1];
    xmlDocPtr doc;
};
struct check_import {
    struct check_import_xml *v;
    size_t n;
};
int check_import_snapshots(const struct store *s, const char *vm, xmlDocPtr dom,
                           struct check_import *out, char *msg, size_t msgsz);
void check_import_free(struct check_import *out);

/* Kinds the check must not look for (VMSTOREFS_CHECK_SKIP=kind,kind:
 * the tests show what each check finds by turning it off). */
bool check_kind_enabled(enum check_kind k);

#endif
