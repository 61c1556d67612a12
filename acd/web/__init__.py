"""The web console of the contact centre (issue 15): agent desktop with screen pop,
tickets, knowledge base, customers, supervisor wallboard. `WebConsole` is a service of
`pbx serve` on its own web address; its pages and scripts are package data (static/)."""
