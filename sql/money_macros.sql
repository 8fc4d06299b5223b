-- Amounts as decimal strings in their currency's minor units, for text people read (payloads,
-- reconciliation details). Ledger amounts are rounded once at rating, so cutting the stored
-- scale is exact; `digits` comes from temp table currency_digits (NULL: printed as stored).
CREATE OR REPLACE TEMP MACRO money_text(amount, digits) AS
    CASE WHEN amount IS NULL THEN NULL
         WHEN digits IS NULL THEN CAST(amount AS VARCHAR)
         WHEN digits = 0 THEN split_part(CAST(amount AS VARCHAR), '.', 1)
         ELSE left(CAST(amount AS VARCHAR), strpos(CAST(amount AS VARCHAR), '.') + digits) END;

-- Other decimals (quantities, unit prices) as text without trailing zeros: 12.5, not 12.500000.
CREATE OR REPLACE TEMP MACRO decimal_text(x) AS
    CASE WHEN x IS NULL THEN NULL
         WHEN strpos(CAST(x AS VARCHAR), '.') = 0 THEN CAST(x AS VARCHAR)
         ELSE rtrim(rtrim(CAST(x AS VARCHAR), '0'), '.') END;
