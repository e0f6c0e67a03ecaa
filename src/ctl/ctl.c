/* vmstorefs-ctl: the store's operations without FUSE.
 *
 * The second front end on the core library (the first is the mount,
 * fuse/): each command is one call into ops/ with the same locks (the
 * VM's lock in STORE/.vmstorefs/locks, qemu's image locks, the writer
 * marks a mount holds for its open active images) and the same journal,
 * so it is safe beside a running mount of the same store, and a crash of
 * either is finished by the next one of either. For scripts that have no
 * mount, and for tests of the core without the kernel in between.
 *
 *   vmstorefs-ctl [-q PATH] STORE COMMAND ARGS...
 *
 * Exit status: 0 done; 1 refused or failed (one line on stderr naming the
 * errno, e.g. "EBUSY", and why; nothing changed unless the line says the
 * operation was committed and is left to recovery); 2 a usage error. */
#include "config.h"

#include "ctl/lvirt.h"
#include "ops/check.h"
#include "ops/clone.h"
#include "ops/snapshot.h"
#include "ops/vmdelete.h"
#include "ops/vmrename.h"
#include "qemu/qimg.h"
#include "store/store.h"
#include "util/log.h"
#include "vm/current.h"
#include "vm/delplan.h"
#include "vm/merge.h"

#include <errno.h>
#include <libxml/parser.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: vmstorefs-ctl [-q QEMU_IMG] STORE COMMAND ARGS...\n"
    "\n"
    "Runs one operation on the store, as the mount would for the file\n"
    "operation shown, under the same locks and journal:\n"
    "  take VM SNAP           mkdir VM/snapshots/SNAP\n"
    "  rename VM SNAP NEW     mv VM/snapshots/SNAP VM/snapshots/NEW\n"
    "  revert VM SNAP         ln -sfn snapshots/SNAP VM/current\n"
    "  delete VM SNAP [DEV]   rmdir VM/snapshots/SNAP (rm VM/snapshots/SNAP/DEV.qcow2)\n"
    "  clone VM NEW [SNAP]    mkdir VM/clones/NEW (VM/snapshots/SNAP/clones/NEW)\n"
    "  delete-vm VM           rmdir VM\n"
    "  rename-vm VM NEW       mv VM NEW\n"
    "  import NEW DIR         a new VM NEW from DIR/domain.xml, DIR/snapshots/*.xml\n"
    "                         (libvirt <domainsnapshot>s) and the images they name\n"
    "  import NEW --libvirt DOMAIN [--connect URI]\n"
    "                         the same from a libvirt domain and its external\n"
    "                         snapshots (virsh dumpxml, snapshot-dumpxml)\n"
    "  export VM [--connect URI]\n"
    "                         virsh define VM's domain.xml, then redefine each\n"
    "                         snapshot.xml in libvirt, parents first\n"
    "  detach VM DEV          rm VM/disks/DEV.qcow2\n"
    "  undefine VM            rm VM/domain.xml (the definition is kept aside)\n"
    "  define VM              put back the definition an undefine kept\n"
    "  current VM             readlink VM/current (prints the snapshot's name)\n"
    "  recover                what a mount does first: finish or undo operations a\n"
    "                         crash left in the journal, merge freed hidden images\n"
    "  check [--json] [--timeout=SECS]\n"
    "                         vmstorefs --check STORE: find what is wrong, change nothing\n"
    "  repair [--json] [--timeout=SECS]\n"
    "                         vmstorefs --repair STORE: check, repair what is safe\n"
    "\n"
    "  -q QEMU_IMG            the qemu-img to run (default: qemu-img in PATH)\n"
    "  -h, --help             this text\n"
    "  -V, --version          the version\n"
    "\n"
    "Exit status: 0 done, 1 refused or failed (stderr says why), 2 usage; check and\n"
    "repair exit as fsck does: 0 clean, 1 repaired, 4 left, 8 operational error.\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* A clone's copy and a wait for a VM's lock end on Ctrl-C. */
static bool cancelled(void *arg)
{
    (void)arg;
    return interrupted != 0;
}

static int usage_error(const char *why)
{
    fprintf(stderr, "vmstorefs-ctl: %s\n%s", why, usage_text);
    return 2;
}

/* The errno's own name: what a script compares, and what the mount's
 * callers see for the same refusal. */
static const char *errno_name(int e)
{
    static const struct {
        int e;
        const char *name;
    } names[] = {
        { EINVAL, "EINVAL" }, { EEXIST, "EEXIST" }, { ENOENT, "ENOENT" }, { EACCES, "EACCES" },
        { EXDEV, "EXDEV" },   { EBUSY, "EBUSY" },   { EMLINK, "EMLINK" }, { ENOSPC, "ENOSPC" },
        { EIO, "EIO" },       { EINTR, "EINTR" },   { EPERM, "EPERM" },   { EROFS, "EROFS" },
        { ENOTEMPTY, "ENOTEMPTY" }, { ENOMEM, "ENOMEM" }, { ENAMETOOLONG, "ENAMETOOLONG" },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (names[i].e == e)
            return names[i].name;
    return "error";
}

struct command {
    const char *name;
    int min_args, max_args; /* after the command word */
};

static const struct command commands[] = {
    { "take", 2, 2 },      { "rename", 3, 3 },    { "revert", 2, 2 },   { "delete", 2, 3 },
    { "clone", 2, 3 },     { "delete-vm", 1, 1 }, { "detach", 2, 2 },   { "undefine", 1, 1 },
    { "define", 1, 1 },    { "current", 1, 1 },   { "recover", 0, 0 },  { "rename-vm", 2, 2 },
    { "check", 0, 2 },     { "repair", 0, 2 },    { "import", 2, 5 },   { "export", 1, 3 },
};

/* import NEW DIR | import NEW --libvirt DOMAIN [--connect URI] |
 * export VM [--connect URI]: the domain (NULL: a directory) and URI, or
 * -1 (usage). */
static int lvirt_args(const char *cmd, char **a, int n, const char **domain, const char **uri)
{
    int i = cmd[0] == 'i' ? 2 : 1;
    if (cmd[0] == 'i' && strcmp(a[1], "--libvirt") == 0) {
        if (n < 3)
            return -1;
        *domain = a[2];
        i = 3;
    }
    if (i < n && strcmp(a[i], "--connect") == 0 && i + 1 < n && (cmd[0] == 'e' || *domain)) {
        *uri = a[i + 1];
        i += 2;
    }
    return i == n ? 0 : -1;
}

/* check|repair [--json] [--timeout=SECS]: the options, or -1 (usage). */
static int check_args(char **a, int n, bool *json, unsigned *timeout)
{
    for (int i = 0; i < n; i++) {
        char *end;
        if (strcmp(a[i], "--json") == 0)
            *json = true;
        else if (strncmp(a[i], "--timeout=", 10) == 0 && a[i][10] &&
                 (*timeout = (unsigned)strtoul(a[i] + 10, &end, 10)) > 0 && !*end)
            continue;
        else
            return -1;
    }
    return 0;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int recover(const struct store *s, char *msg, size_t msgsz)
{
    int r = vm_recover(s, NULL, msg, msgsz);
    if (r < 0)
        return r;
    printf("recovered %d unfinished operation(s)\n", r);
    delplan_collect_store(s);
    return 0;
}

static int run(const struct snap_ctx *c, const char *cmd, char **a, int n, char *msg,
               size_t msgsz)
{
    if (strcmp(cmd, "take") == 0)
        return snapshot_take(c, a[0], a[1], msg, msgsz);
    if (strcmp(cmd, "rename") == 0)
        return snapshot_rename(c, a[0], a[1], a[2], msg, msgsz);
    if (strcmp(cmd, "revert") == 0)
        return snapshot_revert(c, a[0], a[1], msg, msgsz);
    if (strcmp(cmd, "delete") == 0)
        return snapshot_delete(c, a[0], a[1], n > 2 ? a[2] : NULL, msg, msgsz);
    if (strcmp(cmd, "clone") == 0)
        return clone_create(c, a[0], n > 2 ? a[2] : NULL, a[1], msg, msgsz);
    if (strcmp(cmd, "delete-vm") == 0)
        return vm_delete(c, a[0], msg, msgsz);
    if (strcmp(cmd, "rename-vm") == 0)
        return vm_rename(c, a[0], a[1], msg, msgsz);
    if (strcmp(cmd, "detach") == 0)
        return disk_detach(c, a[0], a[1], msg, msgsz);
    if (strcmp(cmd, "undefine") == 0)
        return vm_undefine(c, a[0], msg, msgsz);
    if (strcmp(cmd, "define") == 0)
        return vm_define_kept(c, a[0], msg, msgsz);
    if (strcmp(cmd, "import") == 0 || strcmp(cmd, "export") == 0) {
        const char *domain = NULL, *uri = NULL;
        lvirt_args(cmd, a, n, &domain, &uri);
        if (cmd[0] == 'e')
            return lvirt_export(c, a[0], uri, msg, msgsz);
        return domain ? lvirt_import_libvirt(c, a[0], uri, domain, msg, msgsz)
                      : lvirt_import_dir(c, a[0], a[1], msg, msgsz);
    }
    if (strcmp(cmd, "current") == 0) {
        char snap[PATH_MAX];
        int r = current_snapshot(c->s, a[0], snap, sizeof(snap));
        if (r == 0)
            printf("%s\n", snap);
        else
            snprintf(msg, msgsz, "%s grows from no snapshot", a[0]);
        return r;
    }
    return recover(c->s, msg, msgsz);
}

int main(int argc, char **argv)
{
    const char *qemu_img = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("vmstorefs-ctl %s\n", PACKAGE_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "-q") == 0 && i + 1 < argc)
            qemu_img = argv[++i];
        else
            return usage_error("unknown option");
    }
    if (argc - i < 2)
        return usage_error("a store and a command are needed");
    const char *store_path = argv[i], *cmd = argv[i + 1];
    char **args = argv + i + 2;
    int nargs = argc - i - 2;
    const struct command *k = find_command(cmd);
    if (!k)
        return usage_error("unknown command");
    if (nargs < k->min_args || nargs > k->max_args)
        return usage_error("wrong number of arguments");
    bool json = false, check = strcmp(cmd, "check") == 0 || strcmp(cmd, "repair") == 0;
    unsigned timeout = 0;
    if (check && check_args(args, nargs, &json, &timeout) < 0)
        return usage_error("check and repair take --json and --timeout=SECS");
    const char *lv_domain = NULL, *lv_uri = NULL;
    if ((strcmp(cmd, "import") == 0 || strcmp(cmd, "export") == 0) &&
        lvirt_args(cmd, args, nargs, &lv_domain, &lv_uri) < 0)
        return usage_error("import NEW DIR, import NEW --libvirt DOMAIN [--connect URI], "
                           "export VM [--connect URI]");

    /* The same log lines a mount writes (merge directions, refusals),
     * on stderr. */
    log_init("vmstorefs-ctl", true);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    xmlInitParser();

    static struct store s;
    char msg[MSG_MAX] = "";
    int r = store_check(&s, store_path, msg, sizeof(msg));
    if (r == 0)
        r = qimg_find(qemu_img, s.qemu_img, sizeof(s.qemu_img), msg, sizeof(msg));
    if (r == 0)
        r = store_prepare_meta(&s, msg, sizeof(msg));
    if (r < 0) {
        fprintf(stderr, "vmstorefs-ctl: %s\n", msg);
        store_close(&s);
        return check ? 8 : 1;
    }
    /* Every operation recovers its own VM first (vm_begin); the runner
     * for merges must be in place for that and for the operation's own
     * merges. */
    merge_install();
    if (check) {
        /* The same check as vmstorefs --check, under the same locks. */
        struct check_opts co = { .repair = cmd[0] == 'r', .lock = true, .timeout_sec = timeout };
        int st = check_main(&s, &co, json, stdout, msg, sizeof(msg));
        if (st == 8 && msg[0])
            fprintf(stderr, "vmstorefs-ctl: %s: %s\n", cmd, msg);
        store_close(&s);
        xmlCleanupParser();
        return st;
    }
    struct snap_ctx c = { .s = &s, .cancelled = cancelled, .arg = NULL, .pid = getpid() };
    /* It acts for whoever runs it: a clone is theirs. */
    c.cred.uid = getuid();
    c.cred.gid = getgid();
    int ng = getgroups(CRED_MAX_GROUPS, c.cred.groups);
    c.cred.ngroups = ng > 0 ? (size_t)ng : 0;
    r = run(&c, cmd, args, nargs, msg, sizeof(msg));
    if (r < 0)
        fprintf(stderr, "vmstorefs-ctl: %s: %s: %s\n", cmd, errno_name(-r),
                msg[0] ? msg : strerror(-r));
    store_close(&s);
    xmlCleanupParser();
    return r < 0 ? 1 : 0;
}
