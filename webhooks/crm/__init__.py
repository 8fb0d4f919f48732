"""What a CRM's request and answer look like on the wire: signature schemes and body formats
(pure; the mapping declares which a source uses)."""
