// Package shellwords splits chat text into words the way a POSIX shell
// splits a simple command, without interpreting anything, and quotes words
// so that Split reads them back unchanged. The hub's command engine and the
// cloud-CLI policy (aliases) both split with it, so a command means the
// same words wherever it is read.
//
// The rules:
//
//   - Words are separated by runs of Unicode white space (unicode.IsSpace):
//     space, tab, newline, carriage return, vertical tab, form feed, and
//     also U+0085, the no-break spaces U+00A0 and U+202F and the other
//     Unicode space separators, because chat clients (Slack) put
//     non-breaking spaces into pasted text. Quoted or escaped, a space is
//     part of the word.
//   - '…' keeps everything inside literally, backslashes included.
//   - "…" keeps everything inside literally except that a backslash
//     escapes a double quote or a backslash (\" is ", \\ is \) and removes
//     a following newline; before any other character it is literal.
//   - The typographic quotes chat clients substitute count as plain ones:
//     ‘ and ’ as ', “ and ” as ". Any of a kind closes any of the same
//     kind.
//   - Outside quotes a backslash makes the next character (a whole UTF-8
//     character) literal, except that backslash-newline (or
//     backslash-CRLF) is a line continuation: both vanish and no word
//     starts.
//   - Quotes join with the text around them: a"b c"d is the word "ab cd";
//     an empty pair of quotes is an empty word.
//   - A backslash at the very end (ErrTrailingBackslash) and a quote that
//     is never closed (ErrUnclosedSingle, ErrUnclosedDouble) are errors,
//     never silently kept.
//   - Nothing else is special: $, `, ;, |, &, <, >, (, ), *, ?, ~ and #
//     are ordinary characters, so "; rm -rf /" is three literal words.
//     Bytes that are not valid UTF-8 are kept as they are.
package shellwords
