#include "config.h"

#include "qemu/qspec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing string. */
struct buf {
    char *s;
    size_t len, cap;
    bool failed;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap <= b->len + (size_t)n)
            ncap *= 2;
        char *ns = realloc(b->s, ncap);
        if (!ns) {
            b->failed = true;
            return;
        }
        b->s = ns;
        b->cap = ncap;
    }
}

static bool is_raw(const struct chain *c, size_t i)
{
    return strcmp(c->links[i].format, "raw") == 0;
}

int qspec_chain(const struct chain *c, size_t from, bool with_backing, char **spec,
                struct spawn_fds *fds)
{
    *spec = NULL;
    if (!c->fds || from >= c->n)
        return -EINVAL;
    size_t last = with_backing ? c->n - 1 : from;
    if (last - from + 1 > SPAWN_FDS_MAX)
        return -EMFILE;
    struct buf b = { 0 };
    put(&b, "json:");
    /* Nested, top first: each qcow2 layer's "backing" is the next one;
     * a raw layer has no backing option (and ends every chain). */
    size_t open_braces = 0;
    for (size_t i = from; i <= last; i++) {
        size_t k = i - from;
        put(&b,
            "{\"driver\":\"%s\",\"node-name\":\"n%zu\",\"file\":{\"driver\":\"file\","
            "\"node-name\":\"f%zu\",\"filename\":\"/proc/self/fd/%zu\"}",
            is_raw(c, i) ? "raw" : "qcow2", k, k, 3 + k);
        open_braces++;
        if (is_raw(c, i))
            break;
        if (i == last) {
            put(&b, ",\"backing\":null");
            break;
        }
        put(&b, ",\"backing\":");
    }
    for (; open_braces; open_braces--)
        put(&b, "}");
    if (b.failed) {
        free(b.s);
        return -ENOMEM;
    }
    *spec = b.s;
    fds->fd = c->fds + from;
    fds->n = last - from + 1;
    return 0;
}

int qspec_backing(const struct chain *c, size_t from, size_t i, char **spec)
{
    *spec = NULL;
    size_t at = from + i;
    if (!c->fds || at >= c->n)
        return -EINVAL;
    struct buf b = { 0 };
    /* A second format node on the file node f<i> that layer i opened:
     * qemu-img's -F (the same format) must agree with the driver here,
     * and a qcow2 layer's own backing is the node below it, as opened. */
    if (is_raw(c, at))
        put(&b, "json:{\"driver\":\"raw\",\"file\":\"f%zu\"}", i);
    else if (at + 1 < c->n)
        put(&b, "json:{\"driver\":\"qcow2\",\"file\":\"f%zu\",\"backing\":\"n%zu\"}", i, i + 1);
    else
        put(&b, "json:{\"driver\":\"qcow2\",\"file\":\"f%zu\",\"backing\":null}", i);
    if (b.failed) {
        free(b.s);
        return -ENOMEM;
    }
    *spec = b.s;
    return 0;
}
