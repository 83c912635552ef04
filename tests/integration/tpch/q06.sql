-- TPC-H Q6 (forecasting revenue change), DATE = 1994-01-01, DISCOUNT = 0.06,
-- QUANTITY = 24. The bounds 0.06 - 0.01 and 0.06 + 0.01 are written as 0.05 and 0.07:
-- decimal literals are doubles in ember (and sqlite3), where 0.06 + 0.01 < 0.07 and the
-- query would drop the lines with discount 0.07 that the specification includes.
SELECT sum(l_extendedprice * l_discount) AS revenue
FROM lineitem
WHERE l_shipdate >= DATE '1994-01-01'
  AND l_shipdate < DATE '1995-01-01'
  AND l_discount BETWEEN 0.05 AND 0.07
  AND l_quantity < 24;
