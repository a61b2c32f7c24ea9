/* Internal to config/: how far apart two names are, for "did you mean". */
#ifndef PGQ_CFG_DISTANCE_H
#define PGQ_CFG_DISTANCE_H

/* Levenshtein distance between a and b, or 3 when it is certainly more
 * than 2 (all that matters for "did you mean"). */
int cfg_edit_distance(const char *a, const char *b);

#endif
