#include "config.h"

#include "util/names.h"

#include <string.h>

bool name_is_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > NAME_MAX_LEN || name[0] == '.' || name[0] == '-')
        return false;
    /* Where the store's check puts what nothing refers to (ops/check.h),
     * and what mkfs makes at the root of a file system: never a VM. */
    if (strcmp(name, LOST_FOUND) == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '+' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool dev_is_valid(const char *dev)
{
    size_t len = strlen(dev);
    if (len == 0 || len > DEV_MAX_LEN || dev[0] < 'a' || dev[0] > 'z')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = dev[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

bool dev_from_image_name(const char *file, char *out, size_t outsz)
{
    size_t len = strlen(file), sfx = strlen(IMAGE_SUFFIX);
    if (len <= sfx || strcmp(file + len - sfx, IMAGE_SUFFIX) != 0)
        return false;
    size_t devlen = len - sfx;
    if (devlen > DEV_MAX_LEN || devlen + 1 > outsz)
        return false;
    memcpy(out, file, devlen);
    out[devlen] = '\0';
    return dev_is_valid(out);
}

bool name_is_hidden_dir(const char *s)
{
    static const char prefix[] = HIDDEN_DIR_PREFIX;
    size_t pl = sizeof(prefix) - 1, n = strlen(s);
    if (strncmp(s, prefix, pl) != 0 || n == pl || n > NAME_MAX_LEN)
        return false;
    for (const char *p = s + pl; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}
