package ciphersuite

// The attributes of a cipher suite, one bit each, so that a keyword that
// stands for several values (kDHE covers DHE with and without
// authentication) is a mask.

type keyExchange uint16

const (
	kRSA keyExchange = 1 << iota
	kDHE
	kECDHE
	kPSK
	kRSAPSK
	kDHEPSK
	kECDHEPSK
	kSRP
)

type authentication uint8

const (
	aRSA authentication = 1 << iota
	aDSS
	aECDSA
	aNULL
	aPSK
	aSRP
)

type encryption uint32

const (
	encAES128 encryption = 1 << iota
	encAES256
	encAES128GCM
	encAES256GCM
	encAES128CCM
	encAES256CCM
	encAES128CCM8
	encAES256CCM8
	encChaCha20
	encCamellia128
	encCamellia256
	encARIA128GCM
	encARIA256GCM
	encSEED
	encIDEA
	encRC4
	enc3DES
	encNULL

	encAESGCM   = encAES128GCM | encAES256GCM
	encAESCCM8  = encAES128CCM8 | encAES256CCM8
	encAESCCM   = encAES128CCM | encAES256CCM | encAESCCM8
	encAES      = encAES128 | encAES256 | encAESGCM | encAESCCM
	encCamellia = encCamellia128 | encCamellia256
	encARIA     = encARIA128GCM | encARIA256GCM
	encCBC      = encAES128 | encAES256 | encCamellia | encSEED | encIDEA | enc3DES
)

type mac uint8

const (
	macSHA1 mac = 1 << iota
	macSHA256
	macSHA384
	macAEAD
	macMD5
)

// version is the oldest protocol version a suite works with.
type version uint8

const (
	verSSL3 version = iota + 1
	verTLS1
	verTLS12
)

type level uint8

const (
	levelNone level = iota
	levelMedium
	levelHigh
)

type flags uint8

const (
	// flagNotDefault marks what OpenSSL's COMPLEMENTOFDEFAULT selects.
	flagNotDefault flags = 1 << iota
	// flagFIPS marks the suites OpenSSL's FIPS keyword selects.
	flagFIPS
	// flagLegacy marks suites that OpenSSL 3 no longer builds by default
	// (RC4, 3DES, SEED, IDEA); they keep their historical names.
	flagLegacy
)

// suite is one cipher suite as OpenSSL describes it.
type suite struct {
	name  string // OpenSSL name: ECDHE-RSA-AES128-GCM-SHA256
	std   string // IANA name, which is also Go's: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
	kx    keyExchange
	au    authentication
	enc   encryption
	mac   mac
	ver   version
	bits  int // symmetric strength, for @STRENGTH
	level level
	flags flags
}
