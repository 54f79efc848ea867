package pwhash

// This file is the SHA-512 half of Ulrich Drepper's "Unix crypt using
// SHA-256 and SHA-512" specification, written from the algorithm steps of
// that document. Step numbers in the comments refer to its "The algorithm"
// section.

import (
	"crypto/sha512"
	"strconv"
)

const (
	// cryptAlphabet is the crypt(3) base-64 alphabet: value 0 is '.', 63 is 'z'.
	cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

	schemePrefix = "$6$"
	roundsPrefix = "rounds="

	specDefaultRounds = 5000      // rounds used when the setting names none
	specMinRounds     = 1000      // the spec raises smaller values to this
	specMaxRounds     = 999999999 // the spec lowers larger values to this
	maxSaltLen        = 16        // the spec uses at most 16 salt bytes
	encodedLen        = 86        // 64 digest bytes as crypt base-64
)

// params is a parsed or requested $6$ setting.
type params struct {
	salt   string // at most maxSaltLen bytes
	rounds int    // already clamped to [specMinRounds, specMaxRounds]
	// explicitRounds: the setting carried "rounds=N$", so the output does
	// too (the spec's output rule); otherwise rounds is specDefaultRounds
	// and the field is left out.
	explicitRounds bool
}

// format renders the full crypt string "$6$[rounds=N$]salt$hash".
func (p params) format(sum *[encodedLen]byte) string {
	b := make([]byte, 0, len(schemePrefix)+len(roundsPrefix)+10+len(p.salt)+1+encodedLen)
	b = append(b, schemePrefix...)
	if p.explicitRounds {
		b = append(b, roundsPrefix...)
		b = strconv.AppendInt(b, int64(p.rounds), 10)
		b = append(b, '$')
	}
	b = append(b, p.salt...)
	b = append(b, '$')
	b = append(b, sum[:]...)
	return string(b)
}

// digest runs the spec's steps 1-21 and returns the final 64-byte digest.
// salt must already be truncated to maxSaltLen bytes and rounds clamped.
func digest(password []byte, salt string, rounds int) [sha512.Size]byte {
	const size = sha512.Size // 64: the "block" of steps 9, 10 and 16
	h := sha512.New()
	saltBytes := []byte(salt)

	// Steps 4-8: digest B = SHA512(password || salt || password).
	var b [size]byte
	h.Write(password)
	h.Write(saltBytes)
	h.Write(password)
	h.Sum(b[:0])

	// Steps 1-3, 9-12: digest A.
	var a [size]byte
	h.Reset()
	h.Write(password)
	h.Write(saltBytes)
	// 9: one copy of B for each whole 64-byte block of the password length;
	// 10: then the first (length mod 64) bytes of B.
	for range len(password) / size {
		h.Write(b[:])
	}
	h.Write(b[:len(password)%size])
	// 11: walk the bits of the password length from the lowest up to the
	// highest 1 bit: a 1 adds B, a 0 adds the password.
	for n := len(password); n > 0; n >>= 1 {
		if n&1 != 0 {
			h.Write(b[:])
		} else {
			h.Write(password)
		}
	}
	h.Sum(a[:0])

	// Steps 13-15: digest DP = SHA512(password repeated len(password) times).
	var dp [size]byte
	h.Reset()
	for range len(password) {
		h.Write(password)
	}
	h.Sum(dp[:0])

	// Step 16: byte sequence P, as long as the password: whole copies of DP,
	// then the first (length mod 64) bytes of DP.
	p := make([]byte, len(password))
	for i := 0; i < len(p); i += size {
		copy(p[i:], dp[:])
	}

	// Steps 17-19: digest DS = SHA512(salt repeated 16+A[0] times).
	var ds [size]byte
	h.Reset()
	for range 16 + int(a[0]) {
		h.Write(saltBytes)
	}
	h.Sum(ds[:0])

	// Step 20: byte sequence S, as long as the salt (<= 16 < 64 bytes, so
	// the first len(salt) bytes of DS).
	s := ds[:len(saltBytes)]

	// Step 21: the rounds, numbered from 0; C starts as A.
	c := a
	for i := range rounds {
		h.Reset()
		if i&1 != 0 { // b) odd: P
			h.Write(p)
		} else { // c) even: A/C
			h.Write(c[:])
		}
		if i%3 != 0 { // d)
			h.Write(s)
		}
		if i%7 != 0 { // e)
			h.Write(p)
		}
		if i&1 != 0 { // f) odd: A/C
			h.Write(c[:])
		} else { // g) even: P
			h.Write(p)
		}
		h.Sum(c[:0])
	}

	clear(p)
	clear(dp[:])
	clear(b[:])
	return c
}

// encodeOrder is step 22's byte order: each triple becomes four base-64
// characters, the first byte in the high bits, written lowest 6 bits first.
// Byte 63 is left over and becomes the final two characters.
var encodeOrder = [21][3]uint8{
	{0, 21, 42}, {22, 43, 1}, {44, 2, 23}, {3, 24, 45}, {25, 46, 4},
	{47, 5, 26}, {6, 27, 48}, {28, 49, 7}, {50, 8, 29}, {9, 30, 51},
	{31, 52, 10}, {53, 11, 32}, {12, 33, 54}, {34, 55, 13}, {56, 14, 35},
	{15, 36, 57}, {37, 58, 16}, {59, 17, 38}, {18, 39, 60}, {40, 61, 19},
	{62, 20, 41},
}

// encode is step 22: the 86-character crypt base-64 form of a digest.
func encode(c *[sha512.Size]byte) [encodedLen]byte {
	var out [encodedLen]byte
	j := 0
	for _, t := range encodeOrder {
		w := uint32(c[t[0]])<<16 | uint32(c[t[1]])<<8 | uint32(c[t[2]])
		for range 4 {
			out[j] = cryptAlphabet[w&0x3f]
			w >>= 6
			j++
		}
	}
	w := uint32(c[63])
	out[j] = cryptAlphabet[w&0x3f]
	out[j+1] = cryptAlphabet[w>>6]
	return out
}

// compute returns the encoded hash part for password under p.
func compute(password []byte, p params) [encodedLen]byte {
	c := digest(password, p.salt, p.rounds)
	return encode(&c)
}
