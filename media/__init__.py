"""RTP and audio: codecs, DTMF, AMD, relay. Knows nothing of SIP."""
