/* macset: the interface MAC addresses in use in the store, so a clone's
 * new MACs are unique there (SPEC "Clone identity").
 *
 * A MAC is kept as its 6 bytes; text is "xx:xx:xx:xx:xx:xx" (either case
 * on input, lower case on output, as libvirt writes it). */
#ifndef VMSTOREFS_MACSET_H
#define VMSTOREFS_MACSET_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAC_TEXT_LEN 17 /* "xx:xx:xx:xx:xx:xx" without the NUL */

struct mac_set {
    uint8_t (*macs)[6];
    size_t n, cap;
};

/* Parses "xx:xx:xx:xx:xx:xx"; false for anything else. */
bool mac_parse(const char *text, uint8_t out[6]);
/* out must hold MAC_TEXT_LEN + 1 bytes. */
void mac_format(const uint8_t mac[6], char *out);

bool mac_set_has(const struct mac_set *set, const uint8_t mac[6]);
/* Adds mac unless present: 0 or -ENOMEM. */
int mac_set_add(struct mac_set *set, const uint8_t mac[6]);
void mac_set_free(struct mac_set *set);

/* Adds the <mac address> of every <interface> in the <domain> element
 * `domain` (each <devices> of it, as libvirt reads them all). A missing
 * or unparsable address is skipped: it names no MAC. 0 or -ENOMEM. */
int mac_set_add_domain(struct mac_set *set, xmlNodePtr domain);

#endif
