/* Unit tests for cloneid (the clone identity rewrite, lineage, MACs in
 * use) and macset, on tests/data/xml/clone-source.xml (a VM with every
 * part a clone changes) and small inline domains. Every rewritten
 * definition is checked with `virt-xml-validate FILE domain`; the test
 * skips (77) only when that tool is missing and nothing else failed. */
#include "config.h"

#include "check.h"
#include "testutil.h"
#include "meta/cloneid.h"
#include "vm/macscan.h"
#include "meta/macset.h"
#include "store/store.h"
#include "meta/xmledit.h"
#include "meta/xmlsafe.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uuid/uuid.h>

#define STORE "/srv/vmstore"
#define OLD_UUID "0b7c2e4a-91d3-4f6e-8a25-3c1d7e9f0a11"
#define OLD_GENID "5e1f7a9c-2b3d-4c8e-9f01-a2b3c4d5e6f7"

static char *fixture; /* clone-source.xml */
static bool validator_missing;

/* ---- helpers ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    static char buf[XMLSAFE_MAX_BYTES];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static xmlDocPtr parse(const char *xml)
{
    char msg[256];
    xmlDocPtr d = xmlsafe_parse_mem(xml, strlen(xml), "domain", msg, sizeof(msg));
    if (!d) {
        fprintf(stderr, "parse: %s\n", msg);
        check_failures++;
    }
    return d;
}

/* The fixture with its first `from` replaced by `to`. */
static char *fixture_with(const char *from, const char *to)
{
    const char *at = strstr(fixture, from);
    if (!at) {
        fprintf(stderr, "fixture has no %s\n", from);
        check_failures++;
        return strdup(fixture);
    }
    size_t need = strlen(fixture) - strlen(from) + strlen(to) + 1;
    char *s = malloc(need);
    snprintf(s, need, "%.*s%s%s", (int)(at - fixture), fixture, to, at + strlen(from));
    return s;
}

static char *dump(xmlDocPtr d)
{
    char *out = NULL;
    size_t len;
    CHECK_INT(xmledit_dump(d, &out, &len), 0);
    return out;
}

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char *copy = strdup(path ? path : "/usr/bin:/bin");
    bool found = false;
    for (char *save, *dir = strtok_r(copy, ":", &save); dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", dir, prog);
        found = access(p, X_OK) == 0;
    }
    free(copy);
    return found;
}

/* virt-xml-validate PATH domain, its "validates" line hidden when quiet. */
static bool run_validator(const char *path, bool quiet)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (quiet) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execlp("virt-xml-validate", "virt-xml-validate", path, "domain", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Writes xml to a temp file and runs virt-xml-validate on it. */
static void check_validates(const char *xml, const char *what)
{
    if (!on_path("virt-xml-validate")) {
        validator_missing = true;
        return;
    }
    char path[TEST_TMP_MAX];
    if (!test_tmp_template(path, sizeof(path), "cloneid")) {
        check_failures++;
        return;
    }
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    size_t len = strlen(xml);
    CHECK(write(fd, xml, len) == (ssize_t)len);
    close(fd);
    if (!run_validator(path, true) && !run_validator(path, false)) {
        fprintf(stderr, "virt-xml-validate refused the %s (kept in %s):\n%s\n", what, path, xml);
        check_failures++;
        return;
    }
    unlink(path);
}

/* The text of the first element matching an XPath-like walk of child
 * names from the root ("devices/disk" ...); only the tests need it. */
static xmlNodePtr nth_child(xmlNodePtr parent, const char *name, int n)
{
    for (xmlNodePtr c = parent ? parent->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && xmlStrcmp(c->name, BAD_CAST name) == 0 && n-- == 0)
            return c;
    return NULL;
}

static int count(xmlNodePtr parent, const char *name)
{
    int n = 0;
    while (nth_child(parent, name, n))
        n++;
    return n;
}

static char *text(xmlNodePtr n)
{
    static char buf[4][PATH_MAX];
    static int slot;
    char *b = buf[slot++ % 4];
    xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
    snprintf(b, PATH_MAX, "%s", t ? (const char *)t : "(none)");
    xmlFree(t);
    return b;
}

static char *attr(xmlNodePtr n, const char *a)
{
    static char buf[4][PATH_MAX];
    static int slot;
    char *b = buf[slot++ % 4];
    char *v = xml_attr(n, a);
    snprintf(b, PATH_MAX, "%s", v ? v : "(none)");
    free(v);
    return b;
}

static bool uuid_ok(const char *s)
{
    uuid_t u;
    return strlen(s) == 36 && uuid_parse(s, u) == 0;
}

static struct cloneid_params params(const char *name, const char *snap)
{
    static char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), STORE "/%s", name);
    struct cloneid_params p = {
        .name = name,
        .store_root = STORE,
        .clone_dir = dir,
        .source_vm = "vm1",
        .source_snapshot = snap,
        .time = 1732712345,
    };
    return p;
}

static void add_mac(struct mac_set *s, const char *text)
{
    uint8_t m[6];
    CHECK(mac_parse(text, m));
    CHECK_INT(mac_set_add(s, m), 0);
}

static bool has_mac(const struct mac_set *s, const char *text)
{
    uint8_t m[6];
    return mac_parse(text, m) && mac_set_has(s, m);
}

/* ---- the rich fixture ---- */

static void check_identity(xmlNodePtr root, const struct cloneid_result *res)
{
    CHECK(xmlHasProp(root, BAD_CAST "id") == NULL);
    CHECK_INT(count(root, "name"), 1);
    CHECK_STR(text(nth_child(root, "name", 0)), "vm2");
    CHECK_INT(count(root, "uuid"), 1);
    const char *u = text(nth_child(root, "uuid", 0));
    CHECK(uuid_ok(u));
    CHECK(strcmp(u, OLD_UUID) != 0);
    CHECK_STR(u, res->uuid);
    xmlNodePtr sys = nth_child(nth_child(root, "sysinfo", 0), "system", 0);
    CHECK_STR(attr(nth_child(sys, "entry", 1), "name"), "uuid");
    CHECK_STR(text(nth_child(sys, "entry", 1)), res->uuid);
    CHECK_STR(text(nth_child(sys, "entry", 0)), "vmstorefs");
    const char *g = text(nth_child(root, "genid", 0));
    CHECK(uuid_ok(g));
    CHECK(strcmp(g, OLD_GENID) != 0 && strcmp(g, res->uuid) != 0);
    CHECK_INT(count(root, "title"), 0);
    CHECK_STR(text(nth_child(root, "description", 0)),
              "A source with everything a clone must change");
}

static void check_interfaces(xmlNodePtr devices, const struct mac_set *in_use)
{
    CHECK_INT(count(devices, "interface"), 2);
    char macs[2][32];
    for (int i = 0; i < 2; i++) {
        xmlNodePtr ifc = nth_child(devices, "interface", i);
        snprintf(macs[i], sizeof(macs[i]), "%s", attr(nth_child(ifc, "mac", 0), "address"));
        CHECK(strncmp(macs[i], "52:54:00:", 9) == 0);
        uint8_t m[6];
        CHECK(mac_parse(macs[i], m));
        CHECK(!mac_set_has(in_use, m));
        CHECK_INT(count(ifc, "target"), 0);
        CHECK_INT(count(ifc, "model"), 1);
    }
    CHECK(strcmp(macs[0], macs[1]) != 0);
    CHECK_STR(attr(nth_child(nth_child(devices, "interface", 1), "source", 0), "bridge"), "br0");
}

static void check_disks(xmlNodePtr devices, const struct cloneid_result *res)
{
    static const char *const devs[] = { "vda", "vdb" };
    CHECK_INT(res->ndisks, 2);
    for (int i = 0; i < 2; i++) {
        xmlNodePtr d = nth_child(devices, "disk", i);
        char want[PATH_MAX];
        snprintf(want, sizeof(want), STORE "/vm2/disks/%s.qcow2", devs[i]);
        CHECK_INT(count(d, "source"), 1);
        CHECK_STR(attr(nth_child(d, "source", 0), "file"), want);
        CHECK(xmlHasProp(nth_child(d, "source", 0), BAD_CAST "index") == NULL);
        CHECK_STR(attr(nth_child(d, "driver", 0), "type"), "qcow2");
        /* the chain is gone: one empty <backingStore/> says so */
        CHECK_INT(count(d, "backingStore"), 1);
        xmlNodePtr bs = nth_child(d, "backingStore", 0);
        CHECK(bs && !bs->children && !bs->properties);
        CHECK_STR(attr(nth_child(d, "target", 0), "dev"), devs[i]);
        if (res->ndisks == 2) {
            char old[PATH_MAX];
            snprintf(old, sizeof(old), STORE "/vm1/disks/%s.qcow2", devs[i]);
            CHECK_STR(res->disks[i].dev, devs[i]);
            CHECK_STR(res->disks[i].new_source, want);
            CHECK_STR(res->disks[i].old_source, old);
        }
    }
    /* the guest-visible serial and address of vda stay */
    CHECK_STR(text(nth_child(nth_child(devices, "disk", 0), "serial", 0)), "disk-serial-0001");
    CHECK_INT(count(nth_child(devices, "disk", 0), "address"), 1);
    /* read-only disk and CD-ROM: shared, untouched */
    xmlNodePtr ro = nth_child(devices, "disk", 2), cd = nth_child(devices, "disk", 3);
    CHECK_STR(attr(nth_child(ro, "source", 0), "file"), "/srv/shared/base-ro.img");
    CHECK_STR(attr(nth_child(ro, "driver", 0), "type"), "raw");
    CHECK_INT(count(ro, "readonly"), 1);
    CHECK_STR(attr(nth_child(cd, "source", 0), "file"), "/srv/shared/debian-12.iso");
    CHECK_STR(attr(nth_child(cd, "driver", 0), "type"), "raw");
}

static void check_graphics(xmlNodePtr devices)
{
    xmlNodePtr vnc = nth_child(devices, "graphics", 0), spice = nth_child(devices, "graphics", 1);
    CHECK_STR(attr(vnc, "autoport"), "yes");
    CHECK(xmlHasProp(vnc, BAD_CAST "port") == NULL);
    CHECK_STR(attr(vnc, "websocket"), "-1");
    CHECK_STR(attr(vnc, "listen"), "127.0.0.1");
    CHECK_STR(attr(spice, "autoport"), "yes");
    CHECK(xmlHasProp(spice, BAD_CAST "port") == NULL);
    CHECK(xmlHasProp(spice, BAD_CAST "tlsPort") == NULL);
}

static void check_metadata(xmlDocPtr d, const char *snap, int others)
{
    xmlNodePtr md = nth_child(xmlDocGetRootElement(d), "metadata", 0);
    CHECK_INT(count(xmlDocGetRootElement(d), "metadata"), 1);
    CHECK_INT(count(md, "libosinfo"), others);
    CHECK_INT(count(md, "clone"), 1);
    struct clone_lineage l;
    CHECK_INT(cloneid_read_lineage(d, &l), 0);
    CHECK_STR(l.source, "vm1");
    CHECK_STR(l.snapshot, snap ? snap : "");
    CHECK_INT(l.time, 1732712345);
    xmlNodePtr c = nth_child(md, "clone", 0);
    CHECK(c && c->ns && xmlStrcmp(c->ns->href, BAD_CAST CLONEID_NS) == 0);
    CHECK((xmlHasProp(c, BAD_CAST "snapshot") != NULL) == (snap != NULL));
}

/* Nothing of the source's identity or images survives, anywhere. */
static void check_forgotten(const char *xml)
{
    static const char *const gone[] = {
        OLD_UUID,
        OLD_GENID,
        "52:54:00:11:22:33",
        "52:54:00:44:55:66",
        STORE "/vm1/disks/",
        STORE "/vm1/snapshots/",
        STORE "/vm1/nvram/",
        "vnet4",
        "vnet5",
        "5901",
        "5930",
        "5931",
        "5701",
        "The first VM",
        "vm0",
        "<name>vm1</name>",
        "index=",
    };
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        if (strstr(xml, gone[i])) {
            fprintf(stderr, "rewritten XML still has \"%s\"\n", gone[i]);
            check_failures++;
        }
    }
}

static void test_rich(const char *snap)
{
    xmlDocPtr d = parse(fixture);
    struct mac_set in_use = { 0 };
    add_mac(&in_use, "52:54:00:aa:bb:cc");
    struct cloneid_params p = params("vm2", snap);
    p.in_use = &in_use;
    struct cloneid_result res;
    char msg[512] = "";
    int r = cloneid_rewrite(d, &p, &res, msg, sizeof(msg));
    CHECK_INT(r, 0);
    if (r < 0) {
        fprintf(stderr, "rewrite: %s\n", msg);
        xmlFreeDoc(d);
        mac_set_free(&in_use);
        return;
    }
    xmlNodePtr root = xmlDocGetRootElement(d);
    xmlNodePtr devices = nth_child(root, "devices", 0);
    check_identity(root, &res);
    /* the source's own MACs count as taken */
    add_mac(&in_use, "52:54:00:11:22:33");
    add_mac(&in_use, "52:54:00:44:55:66");
    check_interfaces(devices, &in_use);
    check_disks(devices, &res);
    check_graphics(devices);
    xmlNodePtr os = nth_child(root, "os", 0), nv = nth_child(os, "nvram", 0);
    CHECK_STR(text(nv), STORE "/vm2/nvram/vm2_VARS.fd");
    CHECK_STR(attr(nv, "template"), "/usr/share/OVMF/OVMF_VARS_4M.fd");
    CHECK_STR(res.nvram_old, STORE "/vm1/nvram/vm1_VARS.fd");
    CHECK_STR(res.nvram_new, STORE "/vm2/nvram/vm2_VARS.fd");
    CHECK_STR(text(nth_child(os, "loader", 0)), "/usr/share/OVMF/OVMF_CODE_4M.fd");
    check_metadata(d, snap, 1);
    char *xml = dump(d);
    if (xml) {
        check_forgotten(xml);
        check_validates(xml, "rewritten fixture");
    }
    free(xml);
    cloneid_result_free(&res);
    CHECK(res.disks == NULL && res.nvram_old == NULL);
    xmlFreeDoc(d);
    mac_set_free(&in_use);
}

/* Two clones of one source differ from each other, too. */
static void test_two_clones_differ(void)
{
    xmlDocPtr a = parse(fixture), b = parse(fixture);
    struct cloneid_params p = params("vm2", NULL);
    struct cloneid_result ra, rb;
    char msg[256];
    CHECK_INT(cloneid_rewrite(a, &p, &ra, msg, sizeof(msg)), 0);
    CHECK_INT(cloneid_rewrite(b, &p, &rb, msg, sizeof(msg)), 0);
    CHECK(strcmp(ra.uuid, rb.uuid) != 0);
    xmlNodePtr ga = nth_child(xmlDocGetRootElement(a), "genid", 0);
    xmlNodePtr gb = nth_child(xmlDocGetRootElement(b), "genid", 0);
    CHECK(strcmp(text(ga), text(gb)) != 0);
    cloneid_result_free(&ra);
    cloneid_result_free(&rb);
    xmlFreeDoc(a);
    xmlFreeDoc(b);
}

/* ---- MAC uniqueness with a scripted generator ---- */

struct script {
    const uint8_t (*draws)[3];
    size_t n, next;
    unsigned calls;
};

/* Plays the draws in order, then repeats the last one forever. */
static void scripted(uint8_t *buf, size_t n, void *ctx)
{
    struct script *s = ctx;
    CHECK_INT(n, 3);
    size_t i = s->next < s->n ? s->next++ : s->n - 1;
    memcpy(buf, s->draws[i], 3);
    s->calls++;
}

static void test_mac_collisions(void)
{
    /* 11:22:33 is the source's own, aa:bb:cc in the store, 01:02:03 is
     * drawn for the first interface and drawn again for the second. */
    static const uint8_t draws[][3] = {
        { 0x11, 0x22, 0x33 }, { 0xaa, 0xbb, 0xcc }, { 0x01, 0x02, 0x03 },
        { 0x01, 0x02, 0x03 }, { 0x44, 0x55, 0x66 }, { 0x04, 0x05, 0x06 },
    };
    struct script sc = { draws, sizeof(draws) / sizeof(draws[0]), 0, 0 };
    struct mac_set in_use = { 0 };
    add_mac(&in_use, "52:54:00:AA:BB:CC");
    xmlDocPtr d = parse(fixture);
    struct cloneid_params p = params("vm2", NULL);
    p.in_use = &in_use;
    p.random = scripted;
    p.random_ctx = &sc;
    struct cloneid_result res;
    char msg[256];
    CHECK_INT(cloneid_rewrite(d, &p, &res, msg, sizeof(msg)), 0);
    xmlNodePtr devices = nth_child(xmlDocGetRootElement(d), "devices", 0);
    CHECK_STR(attr(nth_child(nth_child(devices, "interface", 0), "mac", 0), "address"),
              "52:54:00:01:02:03");
    CHECK_STR(attr(nth_child(nth_child(devices, "interface", 1), "mac", 0), "address"),
              "52:54:00:04:05:06");
    CHECK_INT(sc.calls, 6);
    cloneid_result_free(&res);
    xmlFreeDoc(d);

    /* A generator stuck on one value: the second interface gives up after
     * CLONEID_MAC_TRIES draws instead of looping. */
    static const uint8_t stuck[][3] = { { 0x0a, 0x0b, 0x0c } };
    struct script st = { stuck, 1, 0, 0 };
    d = parse(fixture);
    p.random_ctx = &st;
    CHECK_INT(cloneid_rewrite(d, &p, &res, msg, sizeof(msg)), -EAGAIN);
    CHECK_INT(st.calls, 1 + CLONEID_MAC_TRIES);
    CHECK(strstr(msg, "MAC") != NULL);
    CHECK(res.disks == NULL);
    xmlFreeDoc(d);
    mac_set_free(&in_use);
}

/* An interface without <mac> gets one (libvirt would make one up at
 * define time, without looking at the store). */
static void test_interface_without_mac(void)
{
    char *xml = fixture_with("<mac address='52:54:00:44:55:66'/>", "");
    xmlDocPtr d = parse(xml);
    struct cloneid_params p = params("vm2", NULL);
    struct cloneid_result res;
    char msg[256];
    CHECK_INT(cloneid_rewrite(d, &p, &res, msg, sizeof(msg)), 0);
    xmlNodePtr ifc = nth_child(nth_child(xmlDocGetRootElement(d), "devices", 0), "interface", 1);
    CHECK_INT(count(ifc, "mac"), 1);
    CHECK(strncmp(attr(nth_child(ifc, "mac", 0), "address"), "52:54:00:", 9) == 0);
    char *out = dump(d);
    if (out)
        check_validates(out, "interface given a MAC");
    free(out);
    cloneid_result_free(&res);
    xmlFreeDoc(d);
    free(xml);
}

static void test_macset(void)
{
    uint8_t m[6];
    CHECK(mac_parse("52:54:00:Ab:cD:ef", m));
    char t[MAC_TEXT_LEN + 1];
    mac_format(m, t);
    CHECK_STR(t, "52:54:00:ab:cd:ef");
    CHECK(!mac_parse("52:54:00:ab:cd", m));
    CHECK(!mac_parse("52:54:00:ab:cd:eg", m));
    CHECK(!mac_parse("52-54-00-ab-cd-ef", m));
    CHECK(!mac_parse("52:54:00:ab:cd:ef:", m));
    CHECK(!mac_parse(NULL, m));
    struct mac_set s = { 0 };
    for (int i = 0; i < 40; i++) {
        uint8_t x[6] = { 0x52, 0x54, 0, 0, 0, (uint8_t)(i % 20) };
        CHECK_INT(mac_set_add(&s, x), 0);
    }
    CHECK_INT(s.n, 20); /* duplicates are not added twice */
    CHECK(has_mac(&s, "52:54:00:00:00:13"));
    CHECK(!has_mac(&s, "52:54:00:00:00:14"));
    mac_set_free(&s);
}

/* ---- nvram ---- */

static void expect_nvram(const char *nvram_elem, int want, const char *want_path)
{
    char *xml = fixture_with(
        "<nvram "
        "template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/srv/vmstore/vm1/nvram/vm1_VARS.fd</nvram>",
        nvram_elem);
    xmlDocPtr d = parse(xml);
    struct cloneid_params p = params("vm2", NULL);
    struct cloneid_result res;
    char msg[512] = "";
    int r = cloneid_rewrite(d, &p, &res, msg, sizeof(msg));
    if (r != want)
        fprintf(stderr, "nvram %s: %d (%s)\n", nvram_elem, r, msg);
    CHECK_INT(r, want);
    if (want == -EINVAL)
        CHECK(strstr(msg, "nvram") != NULL);
    if (r == 0) {
        xmlNodePtr nv = nth_child(nth_child(xmlDocGetRootElement(d), "os", 0), "nvram", 0);
        CHECK_STR(text(nv), want_path ? STORE "/vm2/nvram/vm2_VARS.fd" : "");
        CHECK(xmlHasProp(nv, BAD_CAST "type") == NULL);
        CHECK_INT(count(nv, "source"), 0);
        if (want_path) {
            CHECK_STR(res.nvram_old, want_path);
        } else {
            CHECK(res.nvram_old == NULL && res.nvram_new == NULL);
        }
        char *out = dump(d);
        if (out)
            check_validates(out, nvram_elem);
        free(out);
        cloneid_result_free(&res);
    }
    xmlFreeDoc(d);
    free(xml);
}

static void test_nvram(void)
{
    /* outside the store: the clone would copy a host file into it */
    expect_nvram("<nvram>/var/lib/libvirt/qemu/nvram/vm1_VARS.fd</nvram>", -EINVAL, NULL);
    expect_nvram("<nvram>/srv/vmstore/../../etc/shadow</nvram>", -EINVAL, NULL);
    expect_nvram("<nvram>/srv/vmstore/vm1/../../../etc/shadow</nvram>", -EINVAL, NULL);
    expect_nvram("<nvram>/srv/vmstore/vm1/./x.fd</nvram>", -EINVAL, NULL);
    expect_nvram("<nvram>/srv/vmstore//vm1/x.fd</nvram>", -EINVAL, NULL);
    expect_nvram("<nvram>/srv/vmstore/.vmstorefs/tmp/x.fd</nvram>", -EINVAL, NULL);
    expect_nvram("<nvram>/srv/vmstoreX/vm1/x.fd</nvram>", -EINVAL, NULL);
    expect_nvram("<nvram>/srv/vmstore/vm1</nvram>", -EINVAL, NULL);
    expect_nvram("<nvram>vm1/nvram/x.fd</nvram>", -EINVAL, NULL);
    expect_nvram("<nvram type='network'><source protocol='nbd' name='x'><host name='h'/></source>"
                 "</nvram>",
                 -EINVAL, NULL);
    expect_nvram("<nvram type='file'><source file='/etc/passwd'/></nvram>", -EINVAL, NULL);
    /* in the store, either form */
    expect_nvram("<nvram type='file'><source file='/srv/vmstore/vm1/nvram/a.fd'/></nvram>", 0,
                 "/srv/vmstore/vm1/nvram/a.fd");
    expect_nvram("<nvram>/srv/vmstore/vm1/VARS.fd</nvram>", 0, "/srv/vmstore/vm1/VARS.fd");
    /* a template only: libvirt makes the clone a fresh store */
    expect_nvram("<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'/>", 0, NULL);
}

/* ---- refusals ---- */

static void expect_refused(const char *xml, const struct cloneid_params *p, const char *why)
{
    xmlDocPtr d = parse(xml);
    if (!d)
        return;
    struct cloneid_result res;
    char msg[512] = "";
    CHECK_INT(cloneid_rewrite(d, p, &res, msg, sizeof(msg)), -EINVAL);
    if (!strstr(msg, why)) {
        fprintf(stderr, "refusal message \"%s\" lacks \"%s\"\n", msg, why);
        check_failures++;
    }
    CHECK(res.disks == NULL && res.ndisks == 0);
    xmlFreeDoc(d);
}

static void test_refusals(void)
{
    struct cloneid_params p = params("vm2", NULL);
    /* the fixture with one edit (from -> to), and the reason expected */
    static const struct {
        const char *from, *to, *why;
    } edits[] = {
        { "</devices>",
          "</devices><devices><disk type='file' device='disk'>"
          "<source file='/srv/vmstore/vm1/disks/vdz.qcow2'/><target dev='vdz'/></disk></devices>",
          "more than one <devices>" },
        { "</os>", "</os><os><type>hvm</type></os>", "<os>" },
        { "<target dev='vdb' bus='virtio'/>", "<target dev='vda' bus='virtio'/>",
          "two disks with target dev vda" },
        { "<target dev='vdb' bus='virtio'/>", "<target dev='VDB' bus='virtio'/>",
          "not a valid device name" },
        { "</os>", "<nvram>/srv/vmstore/vm1/nvram/b.fd</nvram></os>", "more than one <nvram>" },
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        char *x = fixture_with(edits[i].from, edits[i].to);
        expect_refused(x, &p, edits[i].why);
        free(x);
    }
    static const char *const bad_names[] = {
        "",     "../x", ".hidden",
        "-opt", "a/b",  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    };
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        struct cloneid_params q = params("vm2", NULL);
        q.name = bad_names[i];
        expect_refused(fixture, &q, "invalid");
        q = params("vm2", bad_names[i]);
        expect_refused(fixture, &q, "invalid");
        q = params("vm2", NULL);
        q.source_vm = bad_names[i];
        expect_refused(fixture, &q, "invalid");
    }
    struct cloneid_params q = params("vm2", NULL);
    q.clone_dir = "vm2";
    expect_refused(fixture, &q, "absolute");
}

/* A domain with nothing optional: no genid, title, sysinfo, metadata,
 * nvram or graphics; only what is there changes, nothing is added but
 * the lineage (and <uuid>, which libvirt would otherwise invent). */
static void test_minimal(void)
{
    const char *xml = "<domain type='kvm'><name>vm1</name><memory>1048576</memory>"
                      "<os><type arch='x86_64'>hvm</type></os><devices>"
                      "<disk type='file' device='disk'><source file='/srv/vmstore/vm1/disks/"
                      "vda.qcow2'/><target dev='vda'/>"
                      "<mirror type='file' file='/srv/vmstore/vm1/disks/vda.copy' format='qcow2'"
                      " job='copy'><format type='qcow2'/><source file='/srv/vmstore/vm1/disks/"
                      "vda.copy'/></mirror></disk>"
                      "<graphics type='vnc' port='-1' autoport='yes' websocket='-1'/>"
                      "<graphics type='sdl'/>"
                      "<graphics type='spice' autoport='no'/>"
                      "</devices></domain>";
    xmlDocPtr d = parse(xml);
    struct cloneid_params p = params("vm2", NULL);
    struct cloneid_result res;
    char msg[256];
    CHECK_INT(cloneid_rewrite(d, &p, &res, msg, sizeof(msg)), 0);
    xmlNodePtr root = xmlDocGetRootElement(d);
    CHECK_STR(text(nth_child(root, "uuid", 0)), res.uuid);
    CHECK_INT(count(root, "genid"), 0);
    CHECK_INT(count(root, "sysinfo"), 0);
    CHECK(res.nvram_old == NULL);
    xmlNodePtr disk = nth_child(nth_child(root, "devices", 0), "disk", 0);
    CHECK_STR(attr(nth_child(disk, "driver", 0), "type"), "qcow2");
    CHECK_STR(attr(nth_child(disk, "driver", 0), "name"), "qemu");
    xmlNodePtr g = nth_child(nth_child(root, "devices", 0), "graphics", 0);
    CHECK_STR(attr(g, "port"), "-1"); /* already automatic: left alone */
    CHECK_STR(attr(g, "websocket"), "-1");
    g = nth_child(nth_child(root, "devices", 0), "graphics", 1);
    CHECK(xmlHasProp(g, BAD_CAST "autoport") == NULL); /* sdl has no port */
    g = nth_child(nth_child(root, "devices", 0), "graphics", 2);
    CHECK_STR(attr(g, "autoport"), "yes");
    /* a block job's target is the source's, not the clone's */
    CHECK_INT(count(disk, "mirror"), 0);
    check_metadata(d, NULL, 0);
    char *out = dump(d);
    if (out)
        check_validates(out, "minimal clone");
    free(out);
    cloneid_result_free(&res);
    xmlFreeDoc(d);
}

/* ---- lineage ---- */

static xmlDocPtr with_metadata(const char *inner)
{
    char xml[4096];
    snprintf(xml, sizeof(xml),
             "<domain type='kvm'><name>vm3</name><memory>1</memory><os><type>hvm</type></os>"
             "<metadata>%s</metadata></domain>",
             inner);
    return parse(xml);
}

static void expect_lineage(const char *inner, int want)
{
    xmlDocPtr d = with_metadata(inner);
    struct clone_lineage l;
    int r = cloneid_read_lineage(d, &l);
    if (r != want)
        fprintf(stderr, "lineage %s: %d, expected %d\n", inner, r, want);
    CHECK_INT(r, want);
    if (r < 0)
        CHECK(l.source[0] == '\0');
    xmlFreeDoc(d);
}

#define NS "xmlns:v='" CLONEID_NS "'"

static void test_lineage(void)
{
    /* the fixture's own (vm1 is a clone of vm0) */
    xmlDocPtr d = parse(fixture);
    struct clone_lineage l;
    CHECK_INT(cloneid_read_lineage(d, &l), 0);
    CHECK_STR(l.source, "vm0");
    CHECK_STR(l.snapshot, "");
    CHECK_INT(l.time, 1700000000);
    /* set replaces it, keeping libosinfo */
    CHECK_INT(cloneid_set_lineage(d, "vm7", "snap.1", 42), 0);
    CHECK_INT(cloneid_read_lineage(d, &l), 0);
    CHECK_STR(l.source, "vm7");
    CHECK_STR(l.snapshot, "snap.1");
    CHECK_INT(l.time, 42);
    xmlNodePtr md = nth_child(xmlDocGetRootElement(d), "metadata", 0);
    CHECK_INT(count(md, "clone"), 1);
    CHECK_INT(count(md, "libosinfo"), 1);
    /* forget removes ours only */
    CHECK_INT(cloneid_forget_lineage(d), 1);
    CHECK_INT(cloneid_read_lineage(d, &l), -ENOENT);
    md = nth_child(xmlDocGetRootElement(d), "metadata", 0);
    CHECK_INT(count(md, "libosinfo"), 1);
    CHECK_INT(count(md, "clone"), 0);
    CHECK_INT(cloneid_forget_lineage(d), 0);
    char *out = dump(d);
    if (out)
        check_validates(out, "forgotten lineage");
    free(out);
    xmlFreeDoc(d);

    /* no metadata: created, in a place the schema accepts; forgetting the
     * only element removes <metadata> again */
    d = parse("<domain type='kvm'><name>vm3</name><memory>1</memory>"
              "<os><type>hvm</type></os></domain>");
    CHECK_INT(cloneid_read_lineage(d, &l), -ENOENT);
    CHECK_INT(cloneid_set_lineage(d, "vm1", NULL, 7), 0);
    CHECK_INT(cloneid_read_lineage(d, &l), 0);
    CHECK_STR(l.source, "vm1");
    CHECK_STR(l.snapshot, "");
    out = dump(d);
    if (out)
        check_validates(out, "created metadata");
    free(out);
    CHECK_INT(cloneid_forget_lineage(d), 1);
    CHECK_INT(count(xmlDocGetRootElement(d), "metadata"), 0);
    xmlFreeDoc(d);

    /* several elements of our namespace (hand-written): all forgotten */
    d = with_metadata("<v:clone " NS " source='a' time='1'/><v:clone " NS " source='b' time='2'/>"
                      "<v:other " NS "/>");
    CHECK_INT(cloneid_read_lineage(d, &l), 0);
    CHECK_STR(l.source, "a");
    CHECK_INT(cloneid_forget_lineage(d), 3);
    CHECK_INT(cloneid_read_lineage(d, &l), -ENOENT);
    xmlFreeDoc(d);
}

/* A VM renamed (ops/vmrename.h): its clones' lineage names the new
 * name, snapshot and time kept, another namespace's element untouched;
 * and every path into its directory follows, wherever the XML has it
 * (attributes and text: sources, chains, kernel, nvram, a serial log),
 * whole components only. */
static void test_renamed(void)
{
    xmlDocPtr d = with_metadata("<v:clone " NS " source='a' snapshot='s' time='5'/>"
                                "<x:clone xmlns:x='urn:other' source='a'/>");
    struct clone_lineage l;
    CHECK_INT(cloneid_rename_source(xmlDocGetRootElement(d), "a", "b"), 1);
    CHECK_INT(cloneid_read_lineage(d, &l), 0);
    CHECK_STR(l.source, "b");
    CHECK_STR(l.snapshot, "s");
    CHECK_INT(l.time, 5);
    CHECK_INT(cloneid_rename_source(xmlDocGetRootElement(d), "a", "b"), 0);
    char *out = dump(d);
    CHECK(out && strstr(out, "xmlns:x=\"urn:other\" source=\"a\""));
    free(out);
    xmlFreeDoc(d);

    d = parse("<domain type='kvm'><name>a</name><memory>1</memory>"
              "<description>/st/a is where it lives</description>"
              "<os><type>hvm</type><kernel>/st/a/boot/vmlinuz</kernel>"
              "<nvram>/st/a/nvram/a_VARS.fd</nvram></os><devices>"
              "<disk type='file' device='disk'><source file='/st/a/disks/vda.qcow2'/>"
              "<backingStore type='file'><format type='qcow2'/>"
              "<source file='/st/a/snapshots/s/vda.qcow2'/><backingStore/></backingStore>"
              "<target dev='vda'/></disk>"
              "<disk type='dir' device='disk'><source dir='/st/a'/><target dev='vdb'/></disk>"
              "<disk type='file' device='cdrom'><source file='/st/ab/cd.iso'/>"
              "<target dev='hdc'/></disk>"
              "<serial type='pty'><log file='/st/a/serial.log'/></serial></devices></domain>");
    CHECK_INT(xmledit_rewrite_dir(xmlDocGetRootElement(d), "/st/a", "/st/b"), 6);
    out = dump(d);
    static const char *const want[] = {
        "<kernel>/st/b/boot/vmlinuz</kernel>", "<nvram>/st/b/nvram/a_VARS.fd</nvram>",
        "file=\"/st/b/disks/vda.qcow2\"", "file=\"/st/b/snapshots/s/vda.qcow2\"",
        "dir=\"/st/b\"", "file=\"/st/b/serial.log\"", "file=\"/st/ab/cd.iso\"",
        "<description>/st/a is where it lives</description>", "<name>a</name>",
    };
    for (size_t i = 0; out && i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(out, want[i])) {
            fprintf(stderr, "renamed: no %s in %s\n", want[i], out);
            check_failures++;
        }
    free(out);
    CHECK_INT(xmledit_rewrite_dir(xmlDocGetRootElement(d), "/st/a", "/st/b"), 0);
    xmlFreeDoc(d);
}

static void test_hostile_lineage(void)
{
    static const struct {
        const char *metadata;
        int want;
    } cases[] = {
        { "<v:clone " NS " source='vm0' snapshot='s1' time='0'/>", 0 },
        /* another namespace, or none, with the right local name */
        { "<v:clone xmlns:v='https://vmstorefs.org/xmlns/clone/2' source='vm0' "
          "time='1'/>",
          -ENOENT },
        { "<v:clone xmlns:v='https://evil.example/' source='vm0' time='1'/>", -ENOENT },
        { "<clone source='vm0' time='1'/>", -ENOENT },
        { "<x:clone xmlns:x='urn:x' xmlns:vmstorefs='" CLONEID_NS "' source='vm0' "
          "time='1'/>",
          -ENOENT },
        /* our namespace, another name; or not directly in <metadata> */
        { "<v:origin " NS " source='vm0' time='1'/>", -ENOENT },
        { "<x:wrap xmlns:x='urn:x'><v:clone " NS " source='vm0' time='1'/></x:wrap>", -ENOENT },
        /* bad names */
        { "<v:clone " NS " source='../etc' time='1'/>", -EINVAL },
        { "<v:clone " NS " source='' time='1'/>", -EINVAL },
        { "<v:clone " NS " time='1'/>", -EINVAL },
        { "<v:clone " NS " source='.hidden' time='1'/>", -EINVAL },
        { "<v:clone " NS " source='vm0' snapshot='a/b' time='1'/>", -EINVAL },
        { "<v:clone " NS " source='vm0' snapshot='' time='1'/>", -EINVAL },
        { "<v:clone " NS " source='vm0&#10;x' time='1'/>", -EINVAL },
        { "<v:clone " NS " source='"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' time='1'/>",
          -EINVAL },
        { "<v:clone " NS " source='"
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' time='1'/>",
          0 }, /* exactly 64 */
        /* a namespaced attribute is not the attribute */
        { "<v:clone " NS " v:source='vm0' time='1'/>", -EINVAL },
        /* bad times */
        { "<v:clone " NS " source='vm0'/>", -EINVAL },
        { "<v:clone " NS " source='vm0' time='-5'/>", -EINVAL },
        { "<v:clone " NS " source='vm0' time='12a'/>", -EINVAL },
        { "<v:clone " NS " source='vm0' time=' 12'/>", -EINVAL },
        { "<v:clone " NS " source='vm0' time='9223372036854775808'/>", -EINVAL },
        { "<v:clone " NS " source='vm0' time='99999999999999999999'/>", -EINVAL },
        { "<v:clone " NS " source='vm0' time='9223372036854775807'/>", 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_lineage(cases[i].metadata, cases[i].want);
}

/* ---- MACs in the store ---- */

static char tmp[TEST_TMP_MAX];

static void put(const char *rel, const char *content)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", tmp, rel);
    for (char *p = path + strlen(tmp) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "we");
    CHECK(f != NULL);
    if (f) {
        fputs(content, f);
        fclose(f);
    }
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

#define IFACE(mac) \
    "<interface type='network'><mac address='" mac "'/><source network='n'/></interface>"
#define DOMAIN(devs)                                                               \
    "<domain type='kvm'><name>x</name><memory>1</memory><os><type>hvm</type></os>" \
    "<devices>" devs "</devices></domain>"

static void test_collect(void)
{
    if (!test_tmp_template(tmp, sizeof(tmp), "cloneid") || !mkdtemp(tmp)) {
        check_failures++;
        return;
    }
    put("vm1/domain.xml", fixture);
    put("vm2/domain.xml", DOMAIN(IFACE("52:54:00:77:77:77") IFACE("52:54:00:77:77:78")));
    put("vm2/snapshots/s1/snapshot.xml",
        "<domainsnapshot><name>s1</name>" DOMAIN(IFACE("52:54:00:88:88:88")) "</domainsnapshot>");
    /* not counted: a malformed file, a non-VM directory, a bad name */
    put("vm3/domain.xml", "<domain><name>vm3</name>" IFACE("52:54:00:99:99:99"));
    put(".vmstorefs/tmp/domain.xml", DOMAIN(IFACE("52:54:00:99:99:98")));
    put("bad name/domain.xml", DOMAIN(IFACE("52:54:00:99:99:97")));
    struct store s;
    char msg[512];
    CHECK_INT(store_check(&s, tmp, msg, sizeof(msg)), 0);
    struct mac_set set;
    CHECK_INT(macscan_collect(&s, &set), 0);
    CHECK_INT(set.n, 5);
    CHECK(has_mac(&set, "52:54:00:11:22:33"));
    CHECK(has_mac(&set, "52:54:00:44:55:66"));
    CHECK(has_mac(&set, "52:54:00:77:77:77"));
    CHECK(has_mac(&set, "52:54:00:77:77:78"));
    CHECK(has_mac(&set, "52:54:00:88:88:88"));
    CHECK(!has_mac(&set, "52:54:00:99:99:99"));

    /* the set feeds the rewrite: a scripted draw of vm2's MAC is skipped */
    static const uint8_t draws[][3] = {
        { 0x77, 0x77, 0x77 }, { 0x88, 0x88, 0x88 }, { 0x12, 0x34, 0x56 }, { 0x12, 0x34, 0x57 }
    };
    struct script sc = { draws, 4, 0, 0 };
    xmlDocPtr d = parse(fixture);
    struct cloneid_params p = params("vm4", NULL);
    p.in_use = &set;
    p.random = scripted;
    p.random_ctx = &sc;
    struct cloneid_result res;
    CHECK_INT(cloneid_rewrite(d, &p, &res, msg, sizeof(msg)), 0);
    xmlNodePtr devices = nth_child(xmlDocGetRootElement(d), "devices", 0);
    CHECK_STR(attr(nth_child(nth_child(devices, "interface", 0), "mac", 0), "address"),
              "52:54:00:12:34:56");
    CHECK_STR(attr(nth_child(nth_child(devices, "interface", 1), "mac", 0), "address"),
              "52:54:00:12:34:57");
    cloneid_result_free(&res);
    xmlFreeDoc(d);
    mac_set_free(&set);
    store_close(&s);
    nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const char *data = getenv("TEST_DATA");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/xml/clone-source.xml", data ? data : "tests/data");
    fixture = read_file(path);
    if (!fixture)
        return 1;
    check_validates(fixture, "fixture itself");
    test_macset();
    test_rich("s2");
    test_rich(NULL);
    test_two_clones_differ();
    test_mac_collisions();
    test_interface_without_mac();
    test_nvram();
    test_refusals();
    test_minimal();
    test_lineage();
    test_renamed();
    test_hostile_lineage();
    test_collect();
    free(fixture);
    if (validator_missing && !check_failures) {
        fprintf(stderr, "virt-xml-validate not found: skipping\n");
        return 77;
    }
    CHECK_DONE();
}
