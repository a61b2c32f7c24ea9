/* The values the typed job map's round trip sends (tests/typed/roundtrip.c)
 * and the database test checks (tests/typed_test.c). */
#ifndef PGQ_TYPED_VALUES_H
#define PGQ_TYPED_VALUES_H

/* Quotes, backslashes, a slash, every kind of control character JSON
 * escapes, DEL, two- three- and four-byte UTF-8, U+2028, and what would end
 * a C comment or form a trigraph. */
__attribute__((unused)) static const char tricky[] = "quote \" backslash \\ slash / nl \n tab \t cr \r bs \b ff \f "
                             "bell \x01 us \x1f del \x7f e-acute \xc3\xa9 euro \xe2\x82\xac "
                             "emoji \xf0\x9f\x98\x80 ls \xe2\x80\xa8 */ ?\?= end";

/* jansson's escaping of tricky: \" \\ / \n \t \r \b \f \u0001 \u001F, the
 * rest as UTF-8 bytes. */
__attribute__((unused)) static const char tricky_json[] = "\"quote \\\" backslash \\\\ slash / nl \\n tab \\t cr \\r "
                                  "bs \\b ff \\f bell \\u0001 us \\u001F del \x7f e-acute "
                                  "\xc3\xa9 euro \xe2\x82\xac emoji \xf0\x9f\x98\x80 ls "
                                  "\xe2\x80\xa8 */ ?\?= end\"";

/* An object and an array member's JSON text: nested types, a number beyond
 * 64 bits (kept digit for digit), an escape inside a string. */
__attribute__((unused)) static const char obj_text[] = "{\"k\": [1, 2.5, \"x\"], \"n\": null, \"f\": 0.1, "
                               "\"big\": 123456789012345678901234567890, \"s\": \"\\u00e9\\n\"}";
__attribute__((unused)) static const char arr_text[] = "[1, \"two\", {\"3\": true}, [], -1e-7, false]";

#endif
