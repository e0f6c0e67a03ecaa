#include "config.h"

#include "view/vpath.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum { MAX_PARTS = 6 };

/* Splits "/a/b/c" into at most MAX_PARTS components, refusing anything
 * longer than the longest valid name so copies below cannot overflow. */
static int split(const char *path, char parts[MAX_PARTS][NAME_MAX_LEN + 1])
{
    int n = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n == MAX_PARTS || len > NAME_MAX_LEN)
            return -ENOENT;
        memcpy(parts[n], p, len);
        parts[n][len] = '\0';
        n++;
        p += len;
    }
    return n;
}

static int take_name(char *dst, const char *src)
{
    if (!name_is_valid(src))
        return -ENOENT;
    strcpy(dst, src);
    return 0;
}

static int parse_snapshot(char parts[MAX_PARTS][NAME_MAX_LEN + 1], int n, struct vpath *out)
{
    if (n == 2) {
        out->kind = V_SNAPS;
        return 0;
    }
    /* snapshots/.hidden-<hex> (names.h): reachable for the backing chains
     * that lead there, read-only, never listed. */
    if (name_is_hidden_dir(parts[2]) && n <= 4)
        strcpy(out->snap, parts[2]);
    else if (take_name(out->snap, parts[2]) < 0)
        return -ENOENT;
    if (n == 3) {
        out->kind = V_SNAP;
        return 0;
    }
    if (strcmp(parts[3], "clones") == 0) {
        if (n == 4) {
            out->kind = V_SNAP_CLONES;
            return 0;
        }
        out->kind = V_SNAP_CLONE;
        return n == 5 ? take_name(out->name, parts[4]) : -ENOENT;
    }
    if (n == 4 && dev_from_image_name(parts[3], out->dev, sizeof(out->dev))) {
        out->kind = V_SNAP_IMAGE;
        return 0;
    }
    if (n == 4 && strcmp(parts[3], "snapshot.xml") == 0 && !name_is_hidden_dir(out->snap)) {
        out->kind = V_SNAP_XML;
        return 0;
    }
    return -ENOENT;
}

/* The names the VM directory's own entries have (vpath.h). */
static bool is_layout_name(const char *c)
{
    static const char *const names[] = { "domain.xml", "current", "disks", "snapshots",
                                         "clones" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(c, names[i]) == 0)
            return true;
    return false;
}

/* /<vm>/<dir>/<name>...: V_BASE, the components joined below the VM. */
static int parse_base(char parts[MAX_PARTS][NAME_MAX_LEN + 1], int n, struct vpath *out)
{
    size_t len = 0;
    for (int i = 1; i < n; i++) {
        if (strcmp(parts[i], ".") == 0 || strcmp(parts[i], "..") == 0)
            return -ENOENT;
        len += (size_t)snprintf(out->base + len, sizeof(out->base) - len, "%s%s",
                                i > 1 ? "/" : "", parts[i]);
    }
    out->kind = V_BASE;
    return 0;
}

int vpath_parse(const char *path, struct vpath *out)
{
    char parts[MAX_PARTS][NAME_MAX_LEN + 1];
    memset(out, 0, sizeof(*out));
    int n = split(path, parts);
    if (n < 0)
        return n;
    if (n == 0) {
        out->kind = V_ROOT;
        return 0;
    }
    if (n == 1 && strcmp(parts[0], JOBS_FILE) == 0) {
        out->kind = V_JOBS;
        return 0;
    }
    if (take_name(out->vm, parts[0]) < 0)
        return -ENOENT;
    if (n == 1) {
        out->kind = V_VM;
        return 0;
    }
    const char *c = parts[1];
    if (strcmp(c, "snapshots") == 0)
        return parse_snapshot(parts, n, out);
    if (n == 2 && strcmp(c, "domain.xml") == 0)
        out->kind = V_DOMXML;
    else if (n == 2 && strcmp(c, "current") == 0)
        out->kind = V_CURRENT;
    else if (strcmp(c, "disks") == 0 && n <= 3) {
        out->kind = n == 2 ? V_DISKS : V_DISK;
        if (n == 3 && !dev_from_image_name(parts[2], out->dev, sizeof(out->dev)))
            return -ENOENT;
    } else if (strcmp(c, "clones") == 0 && n <= 3) {
        out->kind = n == 2 ? V_CLONES : V_CLONE;
        if (n == 3)
            return take_name(out->name, parts[2]);
    } else if (n >= 3 && !is_layout_name(c)) {
        return parse_base(parts, n, out);
    } else
        return -ENOENT;
    return 0;
}

const char *vpath_kind_name(enum vkind kind)
{
    static const char *const names[] = {
        [V_ROOT] = "root",
        [V_JOBS] = "jobs",
        [V_VM] = "vm",
        [V_DOMXML] = "domain.xml",
        [V_DISKS] = "disks",
        [V_DISK] = "disk",
        [V_SNAPS] = "snapshots",
        [V_SNAP] = "snapshot",
        [V_SNAP_IMAGE] = "frozen image",
        [V_SNAP_XML] = "snapshot metadata",
        [V_SNAP_CLONES] = "snapshot clones",
        [V_SNAP_CLONE] = "snapshot clone",
        [V_CLONES] = "clones",
        [V_CLONE] = "clone",
        [V_CURRENT] = "current",
        [V_BASE] = "base image",
    };
    return names[kind];
}
