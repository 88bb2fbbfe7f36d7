module github.com/bookingledger/ledger

go 1.26
