package testenv

import (
	"bytes"
	binenc "encoding/binary"
)

// MQTTConnect encodes an MQTT 3.1.1 CONNECT (clean session, keepalive
// 30 s) with a username, a password and a QoS 1 will, for tests that
// speak to a broker below any client library (a will on a forbidden
// topic, a raw session).
func MQTTConnect(clientID, user, pass, willTopic, willMsg string) []byte {
	str := func(b *bytes.Buffer, s string) {
		_ = binenc.Write(b, binenc.BigEndian, uint16(len(s)))
		b.WriteString(s)
	}
	var body bytes.Buffer
	str(&body, "MQTT")
	body.WriteByte(4)                                // protocol level 3.1.1
	body.WriteByte(0x80 | 0x40 | 0x08 | 0x04 | 0x02) // user, password, will QoS 1, will, clean
	_ = binenc.Write(&body, binenc.BigEndian, uint16(30))
	str(&body, clientID)
	str(&body, willTopic)
	str(&body, willMsg)
	str(&body, user)
	str(&body, pass)
	pk := []byte{0x10}
	for n := body.Len(); ; {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		pk = append(pk, d)
		if n == 0 {
			break
		}
	}
	return append(pk, body.Bytes()...)
}
