#include "config.h"

#include "qemu/qspec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_raw(const struct chain *c, size_t i)
{
    return strcmp(c->links[i].format, "raw") == 0;
}

/* links[from..last] nested, top first, into f: node names <pfx>n<k> and
 * <pfx>f<k>, layer k's file /proc/self/fd/<fd0 + k>. */
static void put_chain(FILE *f, const struct chain *c, size_t from, size_t last, const char *pfx,
                      size_t fd0)
{
    /* Nested, top first: each qcow2 layer's "backing" is the next one;
     * a raw layer has no backing option (and ends every chain). */
    size_t open_braces = 0;
    for (size_t i = from; i <= last; i++) {
        size_t k = i - from;
        fprintf(f,
                "{\"driver\":\"%s\",\"node-name\":\"%sn%zu\",\"file\":{\"driver\":\"file\","
                "\"node-name\":\"%sf%zu\",\"filename\":\"/proc/self/fd/%zu\"%s}",
                is_raw(c, i) ? "raw" : "qcow2", pfx, k, pfx, k, fd0 + k,
                c->locked ? ",\"locking\":\"off\"" : "");
        open_braces++;
        if (is_raw(c, i))
            break;
        fputs(i == last ? ",\"backing\":null" : ",\"backing\":", f);
    }
    for (; open_braces; open_braces--)
        fputc('}', f);
}

static int end_spec(FILE *f, char **spec)
{
    bool bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        free(*spec);
        *spec = NULL;
        return -ENOMEM;
    }
    return 0;
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
    size_t len = 0;
    FILE *f = open_memstream(spec, &len);
    if (!f)
        return -ENOMEM;
    fputs("json:", f);
    put_chain(f, c, from, last, "", 3);
    int r = end_spec(f, spec);
    if (r < 0)
        return r;
    fds->fd = c->fds + from;
    fds->n = last - from + 1;
    return 0;
}

int qspec_window(const struct chain *c, size_t from, uint64_t offset, uint64_t size,
                 const char *pfx, char **spec)
{
    *spec = NULL;
    if (!c->fds || from >= c->n || c->n > SPAWN_FDS_MAX)
        return -EINVAL;
    size_t len = 0;
    FILE *f = open_memstream(spec, &len);
    if (!f)
        return -ENOMEM;
    fprintf(f, "json:{\"driver\":\"raw\",\"node-name\":\"%sw\",\"offset\":%llu,"
            "\"size\":%llu,\"file\":", pfx, (unsigned long long)offset,
            (unsigned long long)size);
    put_chain(f, c, from, c->n - 1, pfx, 3 + from);
    fputc('}', f);
    return end_spec(f, spec);
}

int qspec_backing(const struct chain *c, size_t from, size_t i, char **spec)
{
    *spec = NULL;
    size_t at = from + i;
    if (!c->fds || at >= c->n)
        return -EINVAL;
    /* A second format node on the file node f<i> that layer i opened:
     * qemu-img's -F (the same format) must agree with the driver here,
     * and a qcow2 layer's own backing is the node below it, as opened. */
    int n;
    if (is_raw(c, at))
        n = asprintf(spec, "json:{\"driver\":\"raw\",\"file\":\"f%zu\"}", i);
    else if (at + 1 < c->n)
        n = asprintf(spec, "json:{\"driver\":\"qcow2\",\"file\":\"f%zu\",\"backing\":\"n%zu\"}", i,
                     i + 1);
    else
        n = asprintf(spec, "json:{\"driver\":\"qcow2\",\"file\":\"f%zu\",\"backing\":null}", i);
    if (n < 0) {
        *spec = NULL;
        return -ENOMEM;
    }
    return 0;
}
