-- Temp macros of the usage aggregation (sql/billing/usage_meters.sql, usage_quantities.sql).

-- A meter's property name as a JSON path: dotted for nesting, every part quoted
-- (`resources.minutes` -> `$."resources"."minutes"`).
CREATE OR REPLACE TEMP MACRO usage_json_path(property) AS
    CASE WHEN property IS NOT NULL THEN
        '$.' || array_to_string(
            list_transform(string_split(property, '.'), lambda part: '"' || part || '"'), '.')
    END;

-- Does an event's property (minified JSON text, NULL when missing) equal a filter's expected
-- value (minified JSON text)? JSON scalar equality: a string only equals the same string, a
-- boolean the same boolean, null only null, and numbers compare by value (1 = 1.0 = 1e0).
-- A missing property matches no filter, not even null.
CREATE OR REPLACE TEMP MACRO usage_json_equal(actual, expected) AS
    coalesce(actual = expected
             OR TRY_CAST(actual AS DECIMAL(38, 12)) = TRY_CAST(expected AS DECIMAL(38, 12)),
             false);

-- The numeric value of a property (minified JSON text): a JSON number, or a string holding a
-- decimal number ("12.50", as CSV exports and many SDKs send), as DECIMAL(38, 12); NULL when it
-- is missing, null, a boolean, an object, an array, a non-numeric string or out of range
-- (|value| >= 10^26). More than 12 decimals are rounded. Never a DOUBLE: JSON numbers with up to
-- 15 significant digits come back from DuckDB's JSON reader exactly as written.
CREATE OR REPLACE TEMP MACRO usage_json_decimal(text) AS
    CASE WHEN starts_with(text, '"')
         THEN TRY_CAST(json_extract_string(text, '$') AS DECIMAL(38, 12))
         ELSE TRY_CAST(text AS DECIMAL(38, 12)) END;

-- The value a unique_count meter counts: strings by their text (so "7" and 7 are one value),
-- other JSON values by their minified text; NULL (not counted) when missing or null.
CREATE OR REPLACE TEMP MACRO usage_json_key(text) AS
    CASE WHEN text IS NULL OR text = 'null' THEN NULL
         WHEN starts_with(text, '"') THEN json_extract_string(text, '$')
         ELSE text END;

-- A DECIMAL(38, 12) as its unscaled integer (value × 10^12), exactly.
CREATE OR REPLACE TEMP MACRO usage_unscaled(value) AS
    trunc(value)::HUGEINT * 1000000000000
    + ((value - trunc(value)) * 1000000000000)::HUGEINT;

-- units / n (both integers) rounded half away from zero.
CREATE OR REPLACE TEMP MACRO usage_round_divide(units, n) AS
    sign(units) * (abs(units) // n + CASE WHEN 2 * (abs(units) % n) >= n THEN 1 ELSE 0 END);

-- total / n exactly, rounded to 12 decimals half away from zero (avg meters). DuckDB divides
-- decimals as DOUBLE, so the division is done on the unscaled HUGEINT instead.
CREATE OR REPLACE TEMP MACRO usage_exact_divide(total, n) AS
    CAST(usage_round_divide(usage_unscaled(total), n) AS DECIMAL(38, 0))
    * CAST(0.000000000001 AS DECIMAL(38, 12));
