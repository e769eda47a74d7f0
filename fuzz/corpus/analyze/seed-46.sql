SELECT /* nested /* comment */ still */ "t"."id" FROM "t" -- trailing
 WHERE $99999999999999999999 = "t"."a"