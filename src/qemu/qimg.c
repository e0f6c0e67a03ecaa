#include "config.h"

#include "qemu/qimg.h"

#include "util/spawn.h"

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void argv_start(struct qimg_argv *a, const char *qemu_img, const char *verb)
{
    a->n = 0;
    a->overflow = false;
    a->fds = (struct spawn_fds){ NULL, 0 };
    a->v[a->n++] = qemu_img;
    a->v[a->n++] = verb;
    a->v[a->n] = NULL;
}

/* A dropped argument changes what qemu-img does (a missing -F makes it
 * probe the backing format): past the limit the whole vector is marked
 * and refused, never run short. */
int qimg_argv_add(struct qimg_argv *a, const char *arg)
{
    if (a->overflow || a->n >= QIMG_ARGV_MAX - 1) {
        a->overflow = true;
        return -E2BIG;
    }
    a->v[a->n++] = arg;
    a->v[a->n] = NULL;
    return 0;
}

static int argv_done(const struct qimg_argv *a)
{
    return a->overflow ? -E2BIG : 0;
}

/* A data step's image is a json: spec of descriptors (qspec.h), never a
 * name: a vector given a name is marked and refused. */
static bool is_spec(const char *image)
{
    return strncmp(image, "json:", 5) == 0;
}

static int spec_only(struct qimg_argv *a, const char *image)
{
    if (is_spec(image))
        return 0;
    a->overflow = true;
    return -EINVAL;
}

void qimg_argv_pass(struct qimg_argv *a, const struct spawn_fds *fds)
{
    a->fds = *fds;
}

int qimg_argv_info(struct qimg_argv *a, const char *qemu_img, const char *image, bool chain)
{
    argv_start(a, qemu_img, "info");
    /* -U: inspecting must work while a running qemu holds the image lock,
     * and must never take a lock that would make that qemu fail. */
    qimg_argv_add(a, "-U");
    qimg_argv_add(a, "--output=json");
    if (chain)
        qimg_argv_add(a, "--backing-chain");
    qimg_argv_add(a, image);
    return argv_done(a);
}

int qimg_argv_create_overlay(struct qimg_argv *a, const char *qemu_img, const char *image,
                              const char *backing, const char *backing_fmt)
{
    argv_start(a, qemu_img, "create");
    qimg_argv_add(a, "-q");
    qimg_argv_add(a, "-f");
    qimg_argv_add(a, "qcow2");
    qimg_argv_add(a, "-b");
    qimg_argv_add(a, backing);
    /* Always record the backing format: without it qemu would probe, and a
     * guest could turn a raw disk into something that reads host files. */
    qimg_argv_add(a, "-F");
    qimg_argv_add(a, backing_fmt);
    qimg_argv_add(a, image);
    return argv_done(a);
}

int qimg_argv_convert_collapse(struct qimg_argv *a, const char *qemu_img, const char *src,
                               const char *src_fmt, const char *dst, bool offload)
{
    argv_start(a, qemu_img, "convert");
    qimg_argv_add(a, "-p");
    qimg_argv_add(a, "-U");
    qimg_argv_add(a, "-W");
    if (offload)
        qimg_argv_add(a, "-C");
    qimg_argv_add(a, "-f");
    qimg_argv_add(a, src_fmt);
    qimg_argv_add(a, "-O");
    qimg_argv_add(a, "qcow2");
    qimg_argv_add(a, src);
    qimg_argv_add(a, dst);
    return spec_only(a, src) < 0 ? -EINVAL : argv_done(a);
}

static int argv_rebase(struct qimg_argv *a, const char *qemu_img, const char *image,
                       const char *backing, const char *backing_fmt, bool unsafe)
{
    argv_start(a, qemu_img, "rebase");
    /* The safe form copies data: its progress is shown in .jobs. */
    qimg_argv_add(a, unsafe ? "-q" : "-p");
    if (unsafe)
        qimg_argv_add(a, "-u");
    qimg_argv_add(a, "-f");
    qimg_argv_add(a, "qcow2");
    qimg_argv_add(a, "-b");
    qimg_argv_add(a, backing);
    if (backing[0] != '\0') {
        qimg_argv_add(a, "-F");
        qimg_argv_add(a, backing_fmt);
    }
    qimg_argv_add(a, image);
    /* The new backing of a safe rebase is opened too: a spec, or "". */
    if (spec_only(a, image) < 0 || (!unsafe && backing[0] && spec_only(a, backing) < 0))
        return -EINVAL;
    return argv_done(a);
}

int qimg_argv_rebase(struct qimg_argv *a, const char *qemu_img, const char *image,
                     const char *backing, const char *backing_fmt)
{
    return argv_rebase(a, qemu_img, image, backing, backing_fmt, false);
}

int qimg_argv_rebase_unsafe(struct qimg_argv *a, const char *qemu_img, const char *image,
                            const char *backing, const char *backing_fmt)
{
    return argv_rebase(a, qemu_img, image, backing, backing_fmt, true);
}

int qimg_argv_create_unsafe(struct qimg_argv *a, const char *qemu_img, const char *image,
                             const char *backing, const char *backing_fmt, const char *size)
{
    argv_start(a, qemu_img, "create");
    qimg_argv_add(a, "-q");
    qimg_argv_add(a, "-f");
    qimg_argv_add(a, "qcow2");
    qimg_argv_add(a, "-u");
    qimg_argv_add(a, "-b");
    qimg_argv_add(a, backing);
    qimg_argv_add(a, "-F");
    qimg_argv_add(a, backing_fmt);
    qimg_argv_add(a, image);
    qimg_argv_add(a, size);
    return argv_done(a);
}

int qimg_argv_commit(struct qimg_argv *a, const char *qemu_img, const char *image)
{
    argv_start(a, qemu_img, "commit");
    qimg_argv_add(a, "-p");
    qimg_argv_add(a, "-f");
    qimg_argv_add(a, "qcow2");
    qimg_argv_add(a, "-d");
    qimg_argv_add(a, image);
    return spec_only(a, image) < 0 ? -EINVAL : argv_done(a);
}

int qimg_argv_convert_window(struct qimg_argv *a, const char *qemu_img, const char *src,
                             const char *dst)
{
    argv_start(a, qemu_img, "convert");
    qimg_argv_add(a, "-p");
    qimg_argv_add(a, "-U");
    qimg_argv_add(a, "-n");
    /* The target "has a backing file": what the source's top layer does
     * not hold itself is left alone in the target instead of written as
     * what reading it through the source's backing gives. With -n the
     * name is never opened (qemu 7.2: it only names the backing of an
     * image convert creates). */
    qimg_argv_add(a, "-B");
    qimg_argv_add(a, "unused");
    qimg_argv_add(a, src);
    qimg_argv_add(a, dst);
    return spec_only(a, src) < 0 || spec_only(a, dst) < 0 ? -EINVAL : argv_done(a);
}

int qimg_argv_map(struct qimg_argv *a, const char *qemu_img, const char *image)
{
    argv_start(a, qemu_img, "map");
    qimg_argv_add(a, "-U");
    qimg_argv_add(a, "--output=json");
    qimg_argv_add(a, image);
    return spec_only(a, image) < 0 ? -EINVAL : argv_done(a);
}

int qimg_argv_check_leaks(struct qimg_argv *a, const char *qemu_img, const char *image)
{
    return qimg_argv_check(a, qemu_img, image, true);
}

int qimg_argv_check(struct qimg_argv *a, const char *qemu_img, const char *image, bool repair)
{
    argv_start(a, qemu_img, "check");
    if (repair) {
        qimg_argv_add(a, "-r");
        qimg_argv_add(a, "leaks");
    }
    qimg_argv_add(a, "-f");
    qimg_argv_add(a, "qcow2");
    qimg_argv_add(a, "--output=json");
    qimg_argv_add(a, image);
    return spec_only(a, image) < 0 ? -EINVAL : argv_done(a);
}

/* ---- JSON ---- */

static const char *get_string(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool get_u64(struct json_object *o, const char *key, uint64_t *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return false;
    int64_t x = json_object_get_int64(v);
    if (x < 0)
        return false;
    *out = (uint64_t)x;
    return true;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int info_from_object(struct json_object *o, struct qimg_info *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    if (!json_object_is_type(o, json_type_object)) {
        snprintf(msg, msgsz, "qemu-img info: expected a JSON object");
        return -EINVAL;
    }
    const char *fmt = get_string(o, "format");
    if (!fmt || strlen(fmt) >= sizeof(out->format) ||
        !get_u64(o, "virtual-size", &out->virtual_size)) {
        snprintf(msg, msgsz, "qemu-img info: missing format or virtual-size");
        return -EINVAL;
    }
    strcpy(out->format, fmt);
    get_u64(o, "actual-size", &out->actual_size);
    struct json_object *dirty;
    if (json_object_object_get_ex(o, "dirty-flag", &dirty))
        out->dirty = json_object_get_boolean(dirty);
    out->filename = dup_or_null(get_string(o, "filename"));
    out->backing_filename = dup_or_null(get_string(o, "backing-filename"));
    out->full_backing_filename = dup_or_null(get_string(o, "full-backing-filename"));
    const char *bfmt = get_string(o, "backing-filename-format");
    if (bfmt && strlen(bfmt) < sizeof(out->backing_format))
        strcpy(out->backing_format, bfmt);
    return 0;
}

/* Strict: the whole text must be one JSON value, nothing after it. */
static struct json_object *parse_strict(const char *json, char *msg, size_t msgsz)
{
    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        snprintf(msg, msgsz, "out of memory");
        return NULL;
    }
    size_t len = strlen(json);
    struct json_object *o = json_tokener_parse_ex(tok, json, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!o || err != json_tokener_success) {
        snprintf(msg, msgsz, "qemu-img info: invalid JSON (%s)", json_tokener_error_desc(err));
        json_object_put(o);
        return NULL;
    }
    for (size_t i = used; i < len; i++) {
        if (json[i] != ' ' && json[i] != '\n' && json[i] != '\t' && json[i] != '\r') {
            snprintf(msg, msgsz, "qemu-img info: trailing data after JSON");
            json_object_put(o);
            return NULL;
        }
    }
    return o;
}

int qimg_parse_info(const char *json, struct qimg_info *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    struct json_object *o = parse_strict(json, msg, msgsz);
    if (!o)
        return -EINVAL;
    int r = info_from_object(o, out, msg, msgsz);
    json_object_put(o);
    if (r < 0)
        qimg_info_clear(out);
    return r;
}

int qimg_parse_chain(const char *json, struct qimg_info **out, size_t *count, char *msg,
                     size_t msgsz)
{
    *out = NULL;
    *count = 0;
    struct json_object *o = parse_strict(json, msg, msgsz);
    if (!o)
        return -EINVAL;
    if (!json_object_is_type(o, json_type_array) || json_object_array_length(o) == 0) {
        snprintf(msg, msgsz, "qemu-img info: expected a non-empty JSON array");
        json_object_put(o);
        return -EINVAL;
    }
    size_t n = json_object_array_length(o);
    struct qimg_info *chain = calloc(n, sizeof(*chain));
    if (!chain) {
        json_object_put(o);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int r = info_from_object(json_object_array_get_idx(o, i), &chain[i], msg, msgsz);
        if (r < 0) {
            qimg_chain_free(chain, i);
            json_object_put(o);
            return r;
        }
    }
    json_object_put(o);
    *out = chain;
    *count = n;
    return 0;
}

void qimg_info_clear(struct qimg_info *info)
{
    free(info->filename);
    free(info->backing_filename);
    free(info->full_backing_filename);
    memset(info, 0, sizeof(*info));
}

void qimg_chain_free(struct qimg_info *chain, size_t count)
{
    for (size_t i = 0; i < count; i++)
        qimg_info_clear(&chain[i]);
    free(chain);
}

/* ---- running it ---- */

static bool is_executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static int search_path(char *out, size_t outsz)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len > 0 && p[0] == '/') {
            char cand[PATH_MAX];
            if (snprintf(cand, sizeof(cand), "%.*s/qemu-img", (int)len, p) < (int)sizeof(cand) &&
                is_executable_file(cand) && strlen(cand) < outsz) {
                strcpy(out, cand);
                return 0;
            }
        }
        p += len + (colon ? 1 : 0);
    }
    return -ENOENT;
}

bool qimg_is_version(const char *out)
{
    static const char prefix[] = "qemu-img version ";
    return out && strncmp(out, prefix, sizeof(prefix) - 1) == 0;
}

int qimg_find(const char *configured, char *out, size_t outsz, char *msg, size_t msgsz)
{
    if (configured) {
        char abs[PATH_MAX];
        if (!realpath(configured, abs) || !is_executable_file(abs)) {
            snprintf(msg, msgsz, "qemu_img=%s: not an executable file", configured);
            return -ENOENT;
        }
        if (strlen(abs) >= outsz)
            return -ENAMETOOLONG;
        strcpy(out, abs);
    } else if (search_path(out, outsz) < 0) {
        snprintf(msg, msgsz,
                 "qemu-img not found in PATH: install the Debian package qemu-utils "
                 "or give -o qemu_img=PATH");
        return -ENOENT;
    }
    const char *argv[] = { out, "--version", NULL };
    struct spawn_result res;
    int r = spawn_run(argv, 30, &res);
    if (r < 0) {
        snprintf(msg, msgsz, "%s --version failed (exit %d)", out, res.exit_code);
    } else if (!qimg_is_version(res.out)) {
        /* /bin/true would pass for qemu-img, and every later call fail. */
        snprintf(msg, msgsz, "%s --version does not say \"qemu-img version\": not qemu-img", out);
        r = -ENOEXEC;
    }
    spawn_result_free(&res);
    return r < 0 ? -ENOEXEC : 0;
}

int qimg_errno(const char *line)
{
    if (strstr(line, "No space left") || strstr(line, "Disk quota"))
        return -ENOSPC;
    /* qemu's image locks: 'Failed to get "write" lock', 'Failed to lock
     * byte 100', and the hint it prints last ('Is another process using
     * the image [F]?'). Not any "lock": "refcount block" is a broken image. */
    if ((strstr(line, "Failed to get") && strstr(line, "lock")) ||
        strstr(line, "Failed to lock byte") || strstr(line, "Is another process using the image"))
        return -EBUSY;
    return -EIO;
}

unsigned qimg_data_timeout(uint64_t bytes)
{
    return 3600 + (unsigned)(bytes / (10u << 20));
}

void qimg_progress_feed(struct qimg_progress *p, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '(') {
            p->in_figure = true;
            p->curlen = 0;
            continue;
        }
        if (!p->in_figure)
            continue;
        if (c != ')') {
            if (p->curlen + 1 < sizeof(p->cur))
                p->cur[p->curlen++] = c;
            else
                p->in_figure = false;
            continue;
        }
        p->in_figure = false;
        p->cur[p->curlen] = '\0';
        char *end;
        double v = strtod(p->cur, &end);
        if (end != p->cur && strcmp(end, "/100%") == 0 && v >= 0 && v <= 100) {
            p->pct = v;
            if (p->on_pct)
                p->on_pct(v, p->arg);
        }
    }
}

/* What a run watches: progress to parse, a caller's cancel test. */
struct run_watch {
    struct qimg_progress *p;
    bool (*cancelled)(void *);
    void *carg;
};

static void watch_output(const char *buf, size_t len, void *arg)
{
    struct run_watch *rw = arg;
    if (rw->p)
        qimg_progress_feed(rw->p, buf, len);
}

static bool watch_cancelled(void *arg)
{
    struct run_watch *rw = arg;
    return rw->cancelled && rw->cancelled(rw->carg);
}

/* qemu-img names its image by the spec it was given (qspec.h), a few
 * hundred bytes of descriptors that mean nothing in a log: each json:{...}
 * in line is cut to "json:{...}" (the caller's message names the image). */
static void elide_specs(char *line)
{
    char *p = line;
    while ((p = strstr(p, "json:{")) != NULL) {
        char *q = p + 5;
        int depth = 0;
        do {
            if (*q == '{')
                depth++;
            else if (*q == '}')
                depth--;
            q++;
        } while (*q && depth > 0);
        if (depth > 0 || q - p <= 10)
            return; /* cut short by the line's limit, or short: leave it */
        memmove(p + 10, q, strlen(q) + 1);
        memcpy(p + 5, "{...}", 5);
        p += 10;
    }
}

int qimg_run(const struct qimg_argv *a, unsigned timeout_sec, const char *what, char *msg,
             size_t msgsz)
{
    return qimg_run_watched(a, timeout_sec, what, NULL, NULL, NULL, msg, msgsz);
}

int qimg_run_watched(const struct qimg_argv *a, unsigned timeout_sec, const char *what,
                     struct qimg_progress *p, bool (*cancelled)(void *), void *carg, char *msg,
                     size_t msgsz)
{
    if (a->overflow) {
        snprintf(msg, msgsz, "qemu-img %s: too many arguments", what);
        return -E2BIG;
    }
    struct run_watch rw = { p, cancelled, carg };
    struct spawn_watch w = { watch_output, cancelled ? watch_cancelled : NULL, &rw };
    struct spawn_result res;
    int r = spawn_run_fds(a->v, a->fds.n ? &a->fds : NULL, timeout_sec, &w, &res);
    if (r == -EINTR && res.cancelled) {
        snprintf(msg, msgsz, "qemu-img %s: interrupted", what);
        spawn_result_free(&res);
        return r;
    }
    if (r < 0) {
        char line[512];
        spawn_last_err_line(&res, line, sizeof(line));
        elide_specs(line);
        /* Killed by someone else (not the timeout): it said nothing. */
        if (!line[0] && res.term_signal && r != -ETIMEDOUT)
            snprintf(line, sizeof(line), "killed by signal %d", res.term_signal);
        if ((size_t)snprintf(msg, msgsz, "qemu-img %s: %s", what,
                             r == -ETIMEDOUT ? "timed out" : line) >= msgsz && msgsz)
            msg[msgsz - 1] = '\0';
        r = r == -ETIMEDOUT || r == -ECHILD ? r : qimg_errno(line);
    }
    spawn_result_free(&res);
    return r;
}

int qimg_parse_check(const char *json, struct qimg_check *out, char *msg, size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    struct json_object *o = parse_strict(json, msg, msgsz);
    if (!o)
        return -EINVAL;
    /* Each count is there only when it is not 0. */
    uint64_t errors = 0;
    int r = 0;
    if (!json_object_is_type(o, json_type_object) || !get_u64(o, "check-errors", &errors)) {
        snprintf(msg, msgsz, "qemu-img check: not a check result");
        r = -EINVAL;
    }
    out->check_errors = errors;
    get_u64(o, "leaks", &out->leaks);
    get_u64(o, "leaks-fixed", &out->leaks_fixed);
    get_u64(o, "corruptions", &out->corruptions);
    json_object_put(o);
    return r;
}

int qimg_repair_leaks(const char *qemu_img, const char *spec, const struct spawn_fds *fds,
                      unsigned timeout_sec, struct qimg_check *out, char *msg, size_t msgsz)
{
    int r = qimg_check_image(qemu_img, spec, fds, timeout_sec, true, out, msg, msgsz);
    if (r == 0 && (out->check_errors || out->leaks || out->corruptions)) {
        snprintf(msg, msgsz,
                 "qemu-img check: %llu leaked cluster(s) left, %llu corruption(s), %llu check "
                 "error(s)",
                 (unsigned long long)out->leaks, (unsigned long long)out->corruptions,
                 (unsigned long long)out->check_errors);
        r = -EIO;
    }
    return r;
}

int qimg_check_image(const char *qemu_img, const char *spec, const struct spawn_fds *fds,
                     unsigned timeout_sec, bool repair, struct qimg_check *out, char *msg,
                     size_t msgsz)
{
    memset(out, 0, sizeof(*out));
    struct qimg_argv a;
    int r = qimg_argv_check(&a, qemu_img, spec, repair);
    if (r < 0) {
        snprintf(msg, msgsz, "qemu-img check: %s", r == -E2BIG ? "too many arguments" : "not a spec");
        return r;
    }
    struct spawn_result res;
    /* Exit 2 (corruptions) and 3 (leaks left) still print the result. */
    int ran = spawn_run_fds(a.v, fds, timeout_sec, NULL, &res);
    if (res.exit_code >= 0 && res.exit_code <= 3 && res.out_len) {
        r = qimg_parse_check(res.out, out, msg, msgsz);
    } else {
        char line[512];
        spawn_last_err_line(&res, line, sizeof(line));
        elide_specs(line);
        snprintf(msg, msgsz, "qemu-img check: %s",
                 res.timed_out ? "timed out"
                 : line[0]     ? line
                 : ran < 0     ? strerror(-ran)
                               : "no result printed");
        r = res.timed_out ? -ETIMEDOUT : ran < 0 && ran != -EIO ? ran : qimg_errno(line);
    }
    spawn_result_free(&res);
    return r;
}

int qimg_info(const char *qemu_img, const char *image, struct qimg_info *out, char *msg,
              size_t msgsz)
{
    struct qimg_argv a;
    int r = qimg_argv_info(&a, qemu_img, image, false);
    if (r < 0) {
        snprintf(msg, msgsz, "qemu-img info: too many arguments");
        memset(out, 0, sizeof(*out));
        return r;
    }
    struct spawn_result res;
    r = spawn_run(a.v, QIMG_INFO_TIMEOUT, &res);
    if (r == 0) {
        r = qimg_parse_info(res.out, out, msg, msgsz);
    } else {
        char line[512];
        spawn_last_err_line(&res, line, sizeof(line));
        elide_specs(line);
        snprintf(msg, msgsz, "%s", r == -ETIMEDOUT ? "qemu-img info timed out" : line);
        memset(out, 0, sizeof(*out));
    }
    spawn_result_free(&res);
    return r;
}

/* `qemu-img map --output=json` prints one extent an line ("[{...},",
 * "{...},", "{...}]"): each is parsed as it comes, so an image of
 * millions of extents needs no more memory than one line. */
struct map_read {
    void (*on_extent)(uint64_t start, uint64_t len, bool allocated, void *arg);
    void *arg;
    char line[1024];
    size_t len;
    bool overlong, bad;
    uint64_t next; /* where the next extent must start */
};

static void map_line(struct map_read *m)
{
    char *l = m->line;
    m->line[m->len] = '\0';
    while (*l == '[' || *l == ' ')
        l++;
    size_t n = strlen(l);
    while (n && (l[n - 1] == ',' || l[n - 1] == ']' || l[n - 1] == ' ' || l[n - 1] == '\r'))
        l[--n] = '\0';
    if (!n)
        return;
    struct json_object *o = json_tokener_parse(l);
    uint64_t start, len;
    struct json_object *present;
    if (!o || !get_u64(o, "start", &start) || !get_u64(o, "length", &len) ||
        !json_object_object_get_ex(o, "present", &present) || start != m->next ||
        len > UINT64_MAX - start) {
        m->bad = true;
    } else {
        m->next = start + len;
        m->on_extent(start, len, json_object_get_boolean(present), m->arg);
    }
    json_object_put(o);
}

static void map_output(const char *buf, size_t len, void *arg)
{
    struct map_read *m = arg;
    for (size_t i = 0; i < len && !m->bad; i++) {
        if (buf[i] != '\n') {
            if (m->len + 1 < sizeof(m->line))
                m->line[m->len++] = buf[i];
            else
                m->overlong = true;
            continue;
        }
        if (m->overlong)
            m->bad = true;
        else
            map_line(m);
        m->len = 0;
    }
}

int qimg_map(const char *qemu_img, const char *spec, const struct spawn_fds *fds,
             unsigned timeout_sec,
             void (*on_extent)(uint64_t start, uint64_t len, bool allocated, void *arg), void *arg,
             uint64_t *size, char *msg, size_t msgsz)
{
    struct qimg_argv a;
    int r = qimg_argv_map(&a, qemu_img, spec);
    if (r < 0) {
        snprintf(msg, msgsz, "qemu-img map: %s", r == -E2BIG ? "too many arguments" : "not a spec");
        return r;
    }
    struct map_read m = { .on_extent = on_extent, .arg = arg };
    struct spawn_watch w = { map_output, NULL, &m };
    struct spawn_result res;
    r = spawn_run_fds(a.v, fds, timeout_sec, &w, &res);
    if (r == 0 && m.len && !m.bad)
        map_line(&m); /* a last line without its newline */
    if (r == 0 && m.bad) {
        snprintf(msg, msgsz, "qemu-img map: output not understood");
        r = -EIO;
    } else if (r < 0) {
        char line[512];
        spawn_last_err_line(&res, line, sizeof(line));
        elide_specs(line);
        snprintf(msg, msgsz, "qemu-img map: %s", r == -ETIMEDOUT ? "timed out" : line);
        r = r == -ETIMEDOUT || r == -ECHILD ? r : qimg_errno(line);
    }
    spawn_result_free(&res);
    *size = m.next;
    return r;
}
