package natsfeed

import (
	"fmt"
	"strings"
)

// RetainedStream is the JetStream stream in which nats-server keeps every
// MQTT retained message of an account (one message per topic).
const RetainedStream = "$MQTT_rmsgs"

// retainedPrefix is the subject prefix of RetainedStream's messages:
// $MQTT.rmsgs.<topic as a NATS subject>.
const retainedPrefix = "$MQTT.rmsgs."

// headerTopic holds the original MQTT topic of a retained record.
const headerTopic = "Nmqtt-RTopic"

// filterSubject turns an MQTT topic filter into the NATS subject filter of
// its retained records, the way nats-server converts topics: a level
// separator '/' becomes '.', a '.' inside a level becomes "//", and the
// wildcards '+' and '#' become '*' and '>'. Filters nats-server would
// spell specially (empty levels: a leading, trailing or doubled '/') or
// reject (whitespace) are refused here.
func filterSubject(filter string) (string, error) {
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "":
			return "", fmt.Errorf("topic filter %q: empty level", filter)
		case strings.ContainsAny(l, " \t\n\r\f\x7f"):
			return "", fmt.Errorf("topic filter %q: whitespace", filter)
		case l == "+":
			levels[i] = "*"
		case l == "#" && i == len(levels)-1:
			levels[i] = ">"
		case strings.ContainsAny(l, "+#*>"):
			return "", fmt.Errorf("topic filter %q: wildcard inside a level", filter)
		default:
			levels[i] = strings.ReplaceAll(l, ".", "//")
		}
	}
	return retainedPrefix + strings.Join(levels, "."), nil
}

// subjectTopic is the reverse of nats-server's topic-to-subject mapping
// (natsSubjectToMQTTTopic): "//" is a '.', "/." a '/', and '.' a level
// separator. It is the fallback for a record without the topic header.
func subjectTopic(subject string) string {
	s := strings.TrimPrefix(subject, retainedPrefix)
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '/' && i+1 < len(s) && s[i+1] == '/':
			b.WriteByte('.')
			i++
		case c == '/' && i+1 < len(s) && s[i+1] == '.':
			b.WriteByte('/')
			i++
		case c == '/':
			// a lone '/' (nats-server drops it too)
		case c == '.':
			b.WriteByte('/')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
